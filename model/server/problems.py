"""How a request ends in an error: `Problem` and the two shapes of error response.

A handler raises `Problem(status, message)`; the route turns it into the answer its
contract promises:

- the container contract (`/invocations`, the multi-model API): `{"error": ...}`
  with the container's own status (`container_error`);
- SageMaker's runtime API (`/endpoints/{name}/invocations`): the container's
  errors wrapped as SageMaker wraps them, a 424 `ModelError` naming the original
  status and message, and SageMaker's own errors (throttling, a missing target
  model, a body over the limit, an inference component with no copies) as
  SageMaker sends them (`runtime_error`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from model.errors import ByomModelError

JSON = "application/json"
_CORAL = "http://internal.amazon.com/coral/"
# The `x-amzn-ErrorType` SageMaker sends for each status; botocore turns the part
# before the colon into the error code it raises.
ERROR_TYPES = {
    400: f"ValidationError:{_CORAL}com.amazon.coral.validate/",
    413: f"ValidationError:{_CORAL}com.amazon.coral.validate/",
    424: f"ModelError:{_CORAL}com.amazon.coral.service/",
    429: f"ThrottlingException:{_CORAL}com.amazon.coral.availability/",
    500: f"InternalFailure:{_CORAL}com.amazon.coral.service/",
    503: f"ServiceUnavailable:{_CORAL}com.amazon.coral.service/",
}


class Problem(ByomModelError):
    """A request that ends in an error response, with the status the container sends."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class InjectedFault(Problem):
    """A failure asked for through the fault settings; passed through as it is."""


class ServiceError(Problem):
    """SageMaker's own refusal (a ValidationError), not the model's error: answered
    as SageMaker answers it, never wrapped as a ModelError."""


class TargetNotFound(ServiceError):
    """The requested target model is not there."""


def container_error(problem: Problem) -> web.Response:
    """The container contract's error: `{"error": ...}` with the problem's status."""
    return web.json_response({"error": problem.message}, status=problem.status)


def runtime_error(problem: Problem, request_id: str) -> web.Response:
    """The error SageMaker's runtime API answers for `problem`."""
    status = problem.status
    body: dict[str, Any]
    if isinstance(problem, InjectedFault | ServiceError) or status == 413:
        # Faults stand for SageMaker itself failing, and SageMaker's own refusals
        # and the size limit come before the container sees the request: none is
        # the model's error.
        kind = ERROR_TYPES.get(status, ERROR_TYPES[500 if status >= 500 else 400])
        body = {"message": problem.message}
    else:
        side = "client" if status < 500 else "server"
        body = {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "OriginalStatusCode": status,
            "OriginalMessage": problem.message,
            "Message": (
                f'Received {side} error ({status}) from primary with message "{problem.message}".'
            ),
        }
        kind, status = ERROR_TYPES[424], 424
    return web.json_response(
        body,
        status=status,
        headers={"x-amzn-ErrorType": kind, "x-amzn-RequestId": request_id},
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body of a control request (faults, model loading).

    Only `application/json` is read: a browser sends that type cross-site only after
    a CORS preflight this server never grants, so a page's `text/plain` form or
    `fetch` cannot reach these routes, whatever else guards them.
    """
    if request.content_type != JSON:
        raise Problem(
            415, f"send the document as {JSON}, not {request.content_type or 'no type'!r}"
        )
    try:
        return await request.json()
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from exc


def control_refusal(expected: str, why: str, status: int = 400) -> web.Response:
    """A local control route's answer to a document it cannot take: what it expects,
    and why this one is not it."""
    return web.json_response({"error": f"expected {expected}: {why}"}, status=status)


async def control_document(request: web.Request, expected: str) -> Any:
    """A local control route's JSON body, or the refusal to answer with (a
    ``web.Response``) when it is not JSON of the right type."""
    try:
        return await read_json(request)
    except Problem as problem:
        return control_refusal(expected, problem.message, problem.status)
