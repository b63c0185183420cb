"""Job control's own decisions, with fakes of the job store: what a retry schedules,
what is refused and why, and that a cancel of an ended job announces nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import job_control
from shared.schemas import Chunk, ChunkPlan, JobItem, JobState

CREATED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def job(state: JobState = JobState.FAILED, **changes: Any) -> JobItem:
    values = {
        "job_id": "a" * 32, "state": state, "bucket": "b", "input_key": "input/x.csv",
        "input_etag": "e", "input_size": 30, "output_key": "output/x.csv",
        "created_at": CREATED, "updated_at": CREATED, "deadline_epoch": 0, "expires_at": 0,
        "chunk_count": 3, "plan_key": "staging/" + "a" * 32 + "/plan.json",
    }  # fmt: skip
    return JobItem.model_validate(values | changes)


CHUNKS = tuple(Chunk(index=i, start=10 * i, end=10 * (i + 1)) for i in range(3))
PLAN = ChunkPlan.model_validate(
    dict(
        job_id="a" * 32, bucket="b", key="input/x.csv", etag="e", size=30, header=False,
        data_start=0, chunks=CHUNKS,
    )
)  # fmt: skip


def test_a_retry_schedules_the_chunks_not_reused_or_the_last_to_assemble():
    assert [c.index for c in job_control.pending_plan(job(), PLAN, {0, 2}).chunks] == [1]
    assert [c.index for c in job_control.pending_plan(job(), PLAN, set()).chunks] == [0, 1, 2]
    # All reused: the last chunk again, whose (duplicate) completion assembles.
    assert [c.index for c in job_control.pending_plan(job(), PLAN, {0, 1, 2}).chunks] == [2]


class FakeStore:
    table = "jobs"

    def __init__(self, current: JobItem | None) -> None:
        self.current = current

    def cancel(self, job_id: str, reason: str) -> JobItem | None:
        return None  # the conditional write lost: the job had ended

    def get(self, job_id: str) -> JobItem | None:
        return self.current


def test_cancelling_an_ended_job_announces_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    announced: list[JobItem] = []
    monkeypatch.setattr(job_control, "announce", lambda job, store: announced.append(job))
    ended = job(JobState.SUCCEEDED)
    assert job_control.cancel(ended.job_id, "late", FakeStore(ended)) is ended  # type: ignore[arg-type]
    assert announced == []
    with pytest.raises(job_control.JobNotFound):
        job_control.cancel("b" * 32, "none", FakeStore(None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "says"),
    [
        (job(JobState.RUNNING), "is RUNNING: only a FAILED or CANCELLED job"),
        (job(JobState.SUCCEEDED), "is SUCCEEDED"),
        (job(transform_job_name="nightly", transform_index=4), "object 4 of transform job"),
        (job(plan_key=None, chunk_count=0, error="line 1: bad"), "upload it again"),
    ],
)
def test_what_is_not_retried_says_why(item: JobItem, says: str) -> None:
    with pytest.raises(job_control.NotRetryable, match=says):
        job_control.retry(item.job_id, FakeStore(item))  # type: ignore[arg-type]
