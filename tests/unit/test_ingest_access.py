"""Ingest's HEAD of the upload: a 403 is a real denial and fails the job; a 404 is not.

The ingest role may list ``input/``, so S3 answers 404 for a key that is gone and
403 only when it refuses the read (bucket policy, object owner, KMS grant). The
S3 client is botocore's own, stubbed; the job store is an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from services.ingest import ingest
from shared import aws
from shared.jobs import JobStore, job_id_of
from shared.schemas import JobItem, JobState, S3ObjectCreatedEvent
from shared.settings import get_settings

KEY = "input/reports/denied.csv"
ETAG = "0123456789abcdef0123456789abcdef"


class MemoryJobStore(JobStore):
    """The part of ``JobStore`` that ingest uses, in memory (nothing reaches DynamoDB)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobItem] = {}

    def get(self, job_id: str) -> JobItem | None:
        return self.jobs.get(job_id)

    def create(self, job: JobItem) -> bool:
        if job.job_id in self.jobs:
            return False
        self.jobs[job.job_id] = job
        return True

    def claim_output_key(self, job_id: str, input_key: str, created_at: datetime) -> str:
        raise AssertionError("a job that cannot read its upload claims no output name")


def upload_event(key: str = KEY) -> S3ObjectCreatedEvent:
    return S3ObjectCreatedEvent.model_validate(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "time": datetime.now(UTC).isoformat(),
            "detail": {
                "bucket": {"name": get_settings().bucket},
                "object": {"key": key, "size": 1234, "etag": ETAG},
            },
        }
    )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The client ``shared.aws.s3()`` returns, stubbed: unexpected calls fail the test."""
    client = boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    monkeypatch.setattr(aws, "s3", lambda: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def announced(monkeypatch: pytest.MonkeyPatch) -> list[JobItem]:
    jobs: list[JobItem] = []
    monkeypatch.setattr(ingest, "announce", lambda job, store: jobs.append(job))
    return jobs


def head_fails(stubber: Stubber, status: int, code: str, key: str = KEY) -> None:
    stubber.add_client_error(
        "head_object",
        service_error_code=code,
        service_message=code,
        http_status_code=status,
        expected_params={"Bucket": get_settings().bucket, "Key": key, "IfMatch": f'"{ETAG}"'},
    )


def test_a_denied_read_fails_the_job_naming_the_upload(
    s3: Stubber, announced: list[JobItem]
) -> None:
    head_fails(s3, 403, "403")
    store = MemoryJobStore()
    event = upload_event()

    job_id = ingest.handle_upload(event, store)

    assert job_id == job_id_of(event)
    job = store.jobs[job_id]
    assert job.state is JobState.FAILED
    assert job.error is not None
    assert job.error.startswith(f"s3://{get_settings().bucket}/{KEY}: S3 denied reading")
    assert "s3:GetObject" in job.error and job.finished_at is not None
    assert announced == [job]


def test_a_duplicate_event_of_a_denied_upload_makes_no_second_job(
    s3: Stubber, announced: list[JobItem]
) -> None:
    head_fails(s3, 403, "AccessDenied")
    head_fails(s3, 403, "AccessDenied")
    store = MemoryJobStore()
    first = ingest.handle_upload(upload_event(), store)
    again = ingest.handle_upload(upload_event(), store)
    assert first == again and list(store.jobs) == [first]
    assert len(announced) == 1 and "(AccessDenied)" in str(announced[0].error)


def test_a_missing_key_is_skipped_silently(s3: Stubber, announced: list[JobItem]) -> None:
    head_fails(s3, 404, "404")
    store = MemoryJobStore()
    assert ingest.handle_upload(upload_event(), store) is None
    assert store.jobs == {} and announced == []


def test_a_missing_key_under_either_spelling_is_skipped(
    s3: Stubber, announced: list[JobItem]
) -> None:
    # The event's key may be URL-encoded: ingest tries it as sent and decoded.
    head_fails(s3, 404, "404", key="input/a+b.csv")
    head_fails(s3, 404, "404", key="input/a b.csv")
    store = MemoryJobStore()
    assert ingest.handle_upload(upload_event("input/a+b.csv"), store) is None
    assert store.jobs == {} and announced == []


def test_other_errors_are_raised_for_a_retry(s3: Stubber, announced: list[JobItem]) -> None:
    head_fails(s3, 503, "SlowDown")
    store = MemoryJobStore()
    with pytest.raises(Exception, match="SlowDown"):
        ingest.handle_upload(upload_event(), store)
    assert store.jobs == {} and announced == []
