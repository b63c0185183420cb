"""A transform object's job ending is counted on its transform job; an upload's is not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared import transform_store
from shared.schemas import JobItem, JobState
from shared.transform_end import object_job_ended


class FakeStore:
    calls: list[tuple[Any, ...]] = []

    def object_ended(self, name: str, index: int, failed: bool, reason: str | None) -> None:
        FakeStore.calls.append((name, index, failed, reason))


@pytest.fixture(autouse=True)
def fake_store(monkeypatch):
    FakeStore.calls = []
    monkeypatch.setattr(transform_store, "TransformStore", FakeStore)


def job(state: JobState, **fields: Any) -> JobItem:
    now = datetime.now(UTC)
    return JobItem(
        job_id="t1", state=state, bucket="byom-local", input_key="in/a.csv", input_etag="e",
        input_size=3, output_key="out/a.csv.out", created_at=now, updated_at=now,
        deadline_epoch=0, expires_at=0, **fields,
    )  # fmt: skip


def test_a_succeeded_object_is_counted_as_not_failed():
    object_job_ended(job(JobState.SUCCEEDED, transform_job_name="tj", transform_index=4))
    assert FakeStore.calls == [("tj", 4, False, None)]


def test_a_failed_object_is_counted_with_its_reason():
    reason = "s3://b/in/a.csv, line 7, column 4: the model rejected the record"
    object_job_ended(job(JobState.FAILED, transform_job_name="tj", transform_index=0, error=reason))
    assert FakeStore.calls == [("tj", 0, True, reason)]


def test_an_upload_s_job_or_an_unfinished_one_is_not_counted():
    object_job_ended(job(JobState.SUCCEEDED))
    object_job_ended(job(JobState.RUNNING, transform_job_name="tj", transform_index=0))
    assert FakeStore.calls == []
