"""What a job does with bad rows: the one policy object every path applies.

A job's policy comes from its upload (``byom-on-bad-rows``, ``byom-max-bad-rows``;
``shared/options.py``) or the settings, travels in the chunk plan and on the job
item, and is applied by ``RowPolicy.enforce`` wherever rows are rejected: the
workers' CSV rows, records and images, and the scheduler's small-file path.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import InputError


class BadRows(StrEnum):
    FAIL = "fail"  # the first bad row fails the whole job
    SKIP = "skip"  # bad rows get an empty prediction and a line in errors/, up to a limit


class RowPolicy(BaseModel):
    """What a job does with bad rows (records, images): the one policy object every
    path applies (the workers' rows, records and media, the small-file path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on_bad_rows: BadRows = BadRows.FAIL
    max_bad_rows: int = Field(default=1000, ge=-1)  # with SKIP; -1: no limit

    def too_many(self, bad_rows: int) -> bool:
        return self.max_bad_rows >= 0 and bad_rows > self.max_bad_rows

    def enforce(
        self, rejected: Mapping[int, InputError], *, uri: str, what: str = "bad rows"
    ) -> None:
        """Raise what ends the chunk: under FAIL the first bad row itself; under SKIP
        an ``InputError`` once they are over the limit. ``what`` says which rows and
        where (``bad rows in lines 2-9``), for that message."""
        if not rejected:
            return
        first = next(iter(rejected.values()))
        if self.on_bad_rows is BadRows.FAIL:
            raise first
        if self.too_many(len(rejected)):
            raise InputError(
                uri,
                f"{len(rejected)} {what}, over the limit of {self.max_bad_rows}; "
                f"the first: {first.describe()}",
            )
