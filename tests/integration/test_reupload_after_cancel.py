"""The same bytes uploaded again after a CANCELLED job make a new job, as after a
FAILED one: ingest makes it and ``byom`` names it alike. Against a real moto server.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest

from cli import jobs
from cli.target import Target
from model.data import generate
from services.ingest.ingest import handle_upload, retry_job_id
from services.ingest.upload import Upload
from shared import naming
from shared.schemas import JobItem, JobState, S3ObjectCreatedEvent
from shared.settings import get_settings
from tests.features import write_feature_csv
from tests.integration.test_endings import REGION, Env, env  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

KEY = "input/again.csv"


def feature_rows() -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(5, seed=4), buffer)
    return buffer.getvalue().encode()


DATA = feature_rows()


@pytest.fixture
def scheduler_queue(env: Env, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    url: str = env.sqs.create_queue(QueueName=f"{env.bucket}-scheduler")["QueueUrl"]
    monkeypatch.setenv("BYOM_SCHEDULER_QUEUE_URL", url)
    get_settings.cache_clear()
    return url


def ended_job(env: Env, state: JobState) -> tuple[str, str, datetime]:  # noqa: F811
    """The upload as S3 has it now (id, ETag, LastModified), after a job of an
    earlier upload of the same bytes ended in ``state``."""
    etag = env.s3.put_object(Bucket=env.bucket, Key=KEY, Body=DATA)["ETag"].strip('"')
    uploaded = env.s3.head_object(Bucket=env.bucket, Key=KEY)["LastModified"]
    job_id = naming.job_id_for(env.bucket, KEY, etag)
    earlier = uploaded - timedelta(minutes=5)
    ended = JobItem(
        job_id=job_id, state=state, bucket=env.bucket, input_key=KEY, input_etag=etag,
        input_size=len(DATA), input_last_modified=earlier, output_key="output/again.csv",
        created_at=earlier, updated_at=earlier, deadline_epoch=0, expires_at=0,
        error="cancelled: by alice" if state is JobState.CANCELLED else "boom",
    )  # fmt: skip
    assert env.store.create(ended)
    return job_id, etag, uploaded


def upload_event(bucket: str, etag: str) -> S3ObjectCreatedEvent:
    return S3ObjectCreatedEvent.model_validate(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "time": "2026-12-06T12:00:00Z",
            "detail": {
                "bucket": {"name": bucket},
                "object": {"key": KEY, "size": len(DATA), "etag": etag},
            },
        }
    )


def reuploaded_after(env: Env, state: JobState, moto_endpoint: str) -> None:  # noqa: F811
    job_id, etag, uploaded = ended_job(env, state)
    retry = retry_job_id(job_id, Upload(env.bucket, KEY, etag, len(DATA), {}, uploaded))
    target = Target(
        region=REGION,
        bucket=env.bucket,
        jobs_table=env.bucket,
        event_bus=env.bucket,
        endpoint_url=moto_endpoint,
    )
    assert jobs.job_id_for_upload(target, KEY, etag, uploaded) == retry != job_id
    assert handle_upload(upload_event(env.bucket, etag)) == retry
    made = env.store.get(retry)
    assert made is not None and made.state is JobState.ACCEPTED, made and made.error
    ended = env.store.get(job_id)
    assert ended is not None and ended.state is state  # the ended job's record stays


def test_reupload_after_a_cancel_is_a_new_job(
    env: Env,  # noqa: F811
    scheduler_queue: str,
    moto_endpoint: str,
) -> None:
    reuploaded_after(env, JobState.CANCELLED, moto_endpoint)


def test_reupload_after_a_failure_is_a_new_job(
    env: Env,  # noqa: F811
    scheduler_queue: str,
    moto_endpoint: str,
) -> None:
    reuploaded_after(env, JobState.FAILED, moto_endpoint)
