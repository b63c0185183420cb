"""One root error; each subclass says what the user can do about it."""

from __future__ import annotations


class ByomError(Exception):
    """Root of every error byom raises on purpose."""


class InputError(ByomError):
    """The uploaded file cannot be processed as it is; the message says where and why.

    ``line`` and ``column`` are 1-based positions in the uploaded file (the header,
    if any, is line 1), so the user can open the file and go straight there.
    """

    def __init__(
        self, uri: str, reason: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.uri = uri
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.uri
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column {self.column}"
        return f"{where}: {self.reason}"


class ModelError(ByomError):
    """The endpoint rejected a request with a model error; retrying will not help."""


class EndpointUnavailable(ByomError):
    """The endpoint kept throttling or failing after every retry."""


class EndpointNoCapacity(EndpointUnavailable):
    """The endpoint had no capacity (a scale-to-zero endpoint that did not wake) for
    longer than the wait allowed: retrying the child would only wait again."""


class PredictionCountError(ModelError):
    """The endpoint answered a request with another number of predictions than it had
    rows: the answers cannot be matched to rows, so the chunk fails as a model error
    at once (a retry asks the same model the same question)."""

    def __init__(self, answered: int, rows: int, *, request: int, requests: int) -> None:
        self.answered = answered
        self.rows = rows
        self.request = request
        super().__init__(
            f"the endpoint returned {answered} predictions for a request of {rows} rows "
            f"(request {request} of {requests}); the model must answer one line per row"
        )
