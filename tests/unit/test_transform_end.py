"""A transform object's job ending is counted on its transform job; an upload's is not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from shared import aws, transform_store
from shared.schemas import JobItem, JobState
from shared.transform_end import object_job_ended


class FakeStore:
    calls: list[tuple[Any, ...]] = []

    def object_ended(self, name: str, index: int, failed: bool, reason: str | None) -> None:
        FakeStore.calls.append((name, index, failed, reason))


class FakeS3:
    """Objects by (bucket, key) -> metadata."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, str]] = {}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise ClientError(
                cast(Any, {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}),
                "HeadObject",
            )
        return {"Metadata": self.objects[(Bucket, Key)]}

    def delete_object(self, *, Bucket: str, Key: str) -> None:
        self.objects.pop((Bucket, Key), None)


@pytest.fixture(autouse=True)
def fake_store(monkeypatch):
    FakeStore.calls = []
    monkeypatch.setattr(transform_store, "TransformStore", FakeStore)


@pytest.fixture
def s3(monkeypatch) -> FakeS3:
    fake = FakeS3()
    monkeypatch.setattr(aws, "s3", lambda: fake)
    return fake


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


def test_a_failed_object_is_counted_with_its_reason(s3):
    reason = "s3://b/in/a.csv, line 7, column 4: the model rejected the record"
    object_job_ended(job(JobState.FAILED, transform_job_name="tj", transform_index=0, error=reason))
    assert FakeStore.calls == [("tj", 0, True, reason)]


def test_an_upload_s_job_or_an_unfinished_one_is_not_counted():
    object_job_ended(job(JobState.SUCCEEDED))
    object_job_ended(job(JobState.RUNNING, transform_job_name="tj", transform_index=0))
    assert FakeStore.calls == []


def test_a_stopped_or_failed_object_loses_the_out_it_wrote_but_not_another_job_s(s3):
    # Its assembly finished just before the stop won: the .out is this job's own.
    s3.objects[("results", "out/a.csv.out")] = {"byom-job-id": "t1"}
    s3.objects[("results", "out/b.csv.out")] = {"byom-job-id": "an-earlier-job"}
    fields = {"transform_job_name": "tj", "transform_index": 0, "output_bucket": "results"}
    object_job_ended(job(JobState.FAILED, **fields))
    assert ("results", "out/a.csv.out") not in s3.objects
    object_job_ended(
        job(JobState.FAILED, **fields).model_copy(update={"output_key": "out/b.csv.out"})
    )
    assert ("results", "out/b.csv.out") in s3.objects
    assert [call[2] for call in FakeStore.calls] == [True, True]


def test_a_succeeded_object_keeps_its_out(s3):
    s3.objects[("results", "out/a.csv.out")] = {"byom-job-id": "t1"}
    object_job_ended(
        job(JobState.SUCCEEDED, transform_job_name="tj", transform_index=0, output_bucket="results")
    )
    assert ("results", "out/a.csv.out") in s3.objects


def test_the_done_event_names_the_object_and_its_out_in_their_own_buckets():
    from shared.events import job_finished

    finished = job(
        JobState.SUCCEEDED, transform_job_name="tj", transform_index=0,
        input_bucket="users-data", output_bucket="results",
    )  # fmt: skip
    detail = job_finished(finished)
    assert detail.input_uri == "s3://users-data/in/a.csv"
    assert detail.output_uri == "s3://results/out/a.csv.out"
    upload = job_finished(job(JobState.SUCCEEDED))
    assert (upload.input_uri, upload.output_uri) == (
        "s3://byom-local/in/a.csv",
        "s3://byom-local/out/a.csv.out",
    )
