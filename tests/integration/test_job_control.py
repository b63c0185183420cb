"""Cancel and retry against a real moto server, with the status service's own functions.

Each test runs the steps of the services in the order a race would run them:
a child's late completion after a cancel, an assembly that a cancel overtakes,
the retry's own completions.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from services.status import finish
from services.status.status import handle_status_message
from shared import aws, chunk_output, job_control, naming, resume
from shared.jobs import JobStore
from shared.schemas import Chunk, ChunkDone, ChunkPlan, JobItem, JobState, ScheduleRequest
from tests.integration.test_endings import CREATED, Env, env, stored  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

ROWS = [b"1,2\n", b"3,4\n", b"5,6\n"]


@pytest.fixture
def scheduler_queue(env: Env, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    from shared.settings import get_settings

    url: str = env.sqs.create_queue(QueueName=f"{env.bucket}-scheduler")["QueueUrl"]
    monkeypatch.setenv("BYOM_SCHEDULER_QUEUE_URL", url)
    get_settings.cache_clear()
    return url


def planned_job(env: Env, input_key: str, created: datetime = CREATED) -> JobItem:  # noqa: F811
    """A SUBMITTED job of three one-line chunks, its plan in staging, nothing counted."""
    data = b"".join(ROWS)
    etag = env.s3.put_object(Bucket=env.bucket, Key=input_key, Body=data)["ETag"].strip('"')
    job_id = naming.job_id_for(env.bucket, input_key, etag)
    plan = ChunkPlan.model_validate(
        dict(
            job_id=job_id, bucket=env.bucket, key=input_key, etag=etag, size=len(data),
            header=False, data_start=0,
            chunks=tuple(Chunk(index=i, start=4 * i, end=4 * (i + 1)) for i in range(3)),
        )
    )  # fmt: skip
    plan_key = naming.plan_key(job_id)
    env.s3.put_object(Bucket=env.bucket, Key=plan_key, Body=plan.model_dump_json())
    job = JobItem(
        job_id=job_id, state=JobState.ACCEPTED, bucket=env.bucket, input_key=input_key,
        input_etag=etag, input_size=len(data),
        output_key=env.store.claim_output_key(job_id, input_key, created),
        created_at=created, updated_at=created, deadline_epoch=2**40, expires_at=0,
        chunk_count=3, plan_key=plan_key,
    )  # fmt: skip
    assert env.store.create(job)
    submitted = env.store.mark_submitted(job_id, "batch-array-1")
    assert submitted is not None
    return submitted


def chunk_done(env: Env, job: JobItem, index: int, body: bytes | None = None) -> None:  # noqa: F811
    """A worker's write of one chunk's output, then its completion through status."""
    key = naming.chunk_output_key(job.job_id, index)
    body = body if body is not None else f"0.{index}\n".encode()
    metadata = chunk_output.metadata(1, 0)  # the counts a worker records on its output
    env.s3.put_object(Bucket=env.bucket, Key=key, Body=body, Metadata=metadata)
    done = ChunkDone(job_id=job.job_id, chunk_index=index, attempt=1, rows=1, output_key=key)
    handle_status_message(done.model_dump_json())


def chunk_failed(job: JobItem, index: int) -> None:
    failure = {"kind": "unavailable", "reason": "EndpointUnavailable: HTTP 500"}
    done = ChunkDone.model_validate(
        {"job_id": job.job_id, "chunk_index": index, "attempt": 3, "rows": 0, "failure": failure}
    )
    handle_status_message(done.model_dump_json())


def test_a_cancelled_job_keeps_its_record_writes_nothing_and_says_cancelled(env: Env) -> None:  # noqa: F811
    job = planned_job(env, "input/cancelled.csv")
    chunk_done(env, job, 0)
    cancelled = job_control.cancel(job.job_id, "by alice")
    assert cancelled.state is JobState.CANCELLED
    assert cancelled.error == "cancelled: by alice"
    # A child of the cancelled array still finishes a chunk, and then the last one.
    chunk_done(env, job, 1)
    chunk_done(env, job, 2)
    after = stored(env, job.job_id)
    assert after.state is JobState.CANCELLED
    assert after.chunks_done == 1  # the late completions were not counted
    assert env.keys("output/") == []
    assert env.keys(naming.staging_prefix(job.job_id)) == []
    [event] = env.done_events()
    assert event["status"] == "CANCELLED"
    assert event["job_id"] == job.job_id
    assert event["output_uri"] is None
    assert event["error"] == "cancelled: by alice"
    # What a retry reuses is set aside: the plan and the counted chunk only.
    kept = resume.kept_prefix(job.job_id)
    assert sorted(env.keys(kept)) == [kept + "out/000000.csv", kept + "plan.json"]


def test_cancelling_again_or_after_the_end_changes_nothing(env: Env) -> None:  # noqa: F811
    job = planned_job(env, "input/twice.csv")
    job_control.cancel(job.job_id, "first")
    again = job_control.cancel(job.job_id, "second")
    assert again.state is JobState.CANCELLED and again.error == "cancelled: first"
    finished = planned_job(env, "input/finished.csv")
    for index in range(3):
        chunk_done(env, finished, index)
    assert job_control.cancel(finished.job_id, "too late").state is JobState.SUCCEEDED
    assert [e["status"] for e in env.done_events()] == ["CANCELLED", "SUCCEEDED"]
    with pytest.raises(job_control.JobNotFound):
        job_control.cancel("0" * 32, "no such job")


def test_a_cancel_that_overtakes_the_assembly_leaves_no_output(
    env: Env,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = planned_job(env, "input/overtaken.csv")
    chunk_done(env, job, 0)
    chunk_done(env, job, 1)
    real_assemble = finish.assemble  # type: ignore[attr-defined]

    def assemble_then_cancel(job: JobItem) -> int:
        size = real_assemble(job)
        job_control.cancel(job.job_id, "while assembling")
        return size

    monkeypatch.setattr(finish, "assemble", assemble_then_cancel)
    chunk_done(env, job, 2)  # the last count: status assembles, a cancel lands meanwhile
    assert stored(env, job.job_id).state is JobState.CANCELLED
    assert env.keys("output/") == []
    assert [e["status"] for e in env.done_events()] == ["CANCELLED"]


def test_a_retry_scores_only_the_chunks_left_and_assembles_all(
    env: Env,  # noqa: F811
    scheduler_queue: str,
) -> None:
    job = planned_job(env, "input/resumed.csv")
    chunk_done(env, job, 0, b"kept 0\n")
    chunk_done(env, job, 2, b"kept 2\n")
    chunk_failed(job, 1)
    failed = stored(env, job.job_id)
    assert failed.state is JobState.FAILED
    assert [e["status"] for e in env.done_events()] == ["FAILED"]

    retried = job_control.retry(job.job_id)
    assert retried.state is JobState.ACCEPTED
    assert (retried.retries, retried.chunks_done, retried.error) == (1, 2, None)
    [message] = env.sqs.receive_message(QueueUrl=scheduler_queue).get("Messages", [])
    request = ScheduleRequest.model_validate_json(message["Body"])
    assert request.plan_key == job_control.retry_plan_key(job.job_id, 1)
    plan_body = env.s3.get_object(Bucket=env.bucket, Key=request.plan_key)["Body"].read()
    assert [c.index for c in ChunkPlan.model_validate_json(plan_body).chunks] == [1]
    assert env.keys(resume.kept_prefix(job.job_id)) == []  # back in staging

    # The retry's array scores chunk 1; its completion completes the job.
    env.store.mark_submitted(job.job_id, "batch-array-2")
    chunk_done(env, job, 1, b"new 1\n")
    done = stored(env, job.job_id)
    assert done.state is JobState.SUCCEEDED
    output = env.s3.get_object(Bucket=env.bucket, Key=job.output_key)["Body"].read()
    assert output == b"kept 0\nnew 1\nkept 2\n"
    [event] = env.done_events()
    assert (event["status"], event["retries"]) == ("SUCCEEDED", 1)


def test_a_cancelled_job_is_retried_and_a_finished_one_is_not(
    env: Env,  # noqa: F811
    scheduler_queue: str,
) -> None:
    job = planned_job(env, "input/cancel-then-retry.csv")
    chunk_done(env, job, 1)
    job_control.cancel(job.job_id, "paused")
    retried = job_control.retry(job.job_id)
    assert (retried.state, retried.retries) == (JobState.ACCEPTED, 1)
    request = json.loads(env.sqs.receive_message(QueueUrl=scheduler_queue)["Messages"][0]["Body"])
    body = env.s3.get_object(Bucket=env.bucket, Key=request["plan_key"])["Body"].read()
    assert [c.index for c in ChunkPlan.model_validate_json(body).chunks] == [0, 2]
    with pytest.raises(job_control.NotRetryable, match="is ACCEPTED"):
        job_control.retry(job.job_id)  # running again: not twice
    finished = planned_job(env, "input/done.csv")
    for index in range(3):
        chunk_done(env, finished, index)
    with pytest.raises(job_control.NotRetryable, match="is SUCCEEDED"):
        job_control.retry(finished.job_id)


def test_two_retries_at_once_make_one_run(env: Env, scheduler_queue: str) -> None:  # noqa: F811
    job = planned_job(env, "input/raced-retry.csv")
    job_control.cancel(job.job_id, "to retry")
    store: Any = JobStore()
    stale = store.get(job.job_id)
    job_control.retry(job.job_id)
    assert store.reopen(stale, 2**40, {}) is None  # the second, reading the job as it was
    assert stored(env, job.job_id).retries == 1
    aws.sqs().purge_queue(QueueUrl=scheduler_queue)


def test_a_chunk_whose_kept_output_is_gone_is_scored_again(
    env: Env,  # noqa: F811
    scheduler_queue: str,
) -> None:
    job = planned_job(env, "input/lost-kept.csv")
    chunk_done(env, job, 0)
    chunk_done(env, job, 2)
    chunk_failed(job, 1)
    lost = resume.kept_prefix(job.job_id) + "out/000002.csv"
    env.s3.delete_object(Bucket=env.bucket, Key=lost)  # keeping failed, or it expired
    retried = job_control.retry(job.job_id)
    assert (retried.chunks_done, retried.rows, retried.done_chunks) == (1, 1, frozenset({0}))
    request = json.loads(env.sqs.receive_message(QueueUrl=scheduler_queue)["Messages"][0]["Body"])
    body = env.s3.get_object(Bucket=env.bucket, Key=request["plan_key"])["Body"].read()
    assert [c.index for c in ChunkPlan.model_validate_json(body).chunks] == [1, 2]
    env.store.mark_submitted(job.job_id, "batch-array-2")
    chunk_done(env, job, 2)
    chunk_done(env, job, 1)
    assert stored(env, job.job_id).state is JobState.SUCCEEDED
    assert stored(env, job.job_id).rows == 3
