"""How jobs end, against a real moto server (and the local Batch runner where arrays run).

Each test sets up the race or crash it is about by calling the services' own
functions in the order the race would run them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.local.processes import Service, free_port, wait_until
from infra.local.resources import subscribe_done_events
from infra.local.stack import REPO
from services.status import finish, reaper
from services.status.assemble import assemble, assemble_errors
from services.status.status import handle_status_message
from shared import aws, endings, naming
from shared.events import publish_done
from shared.jobs import JobStore
from shared.schemas import ChunkDone, JobItem, JobState
from shared.settings import get_settings

pytestmark = pytest.mark.integration

REGION = "us-east-1"


@dataclass
class Env:
    store: JobStore
    s3: Any
    sqs: Any
    bucket: str
    done_queue: str

    def done_events(self) -> list[dict[str, Any]]:
        """Every done event delivered so far (the queue is this test's own)."""
        details: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.done_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return details
            for message in messages:
                details.append(json.loads(message["Body"])["detail"])
                self.sqs.delete_message(
                    QueueUrl=self.done_queue, ReceiptHandle=message["ReceiptHandle"]
                )

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for obj in listed.get("Contents", [])]


@pytest.fixture
def env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: Any) -> Iterator[Env]:
    name = f"end-{request.node.name.replace('_', '-')}"[:50].lower().strip("-")
    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "BYOM_BUCKET": name,
        "BYOM_JOBS_TABLE": name,
        "BYOM_EVENT_BUS": name,
    }.items():
        monkeypatch.setenv(key, value)
    clear = (aws.s3, aws.sqs, aws.dynamodb, aws.events, aws.batch, get_settings)
    for cached in clear:
        cached.cache_clear()
    aws.s3().create_bucket(Bucket=name)
    aws.dynamodb().create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws.events().create_event_bus(Name=name)
    done = subscribe_done_events(moto_endpoint, REGION, event_bus=name, queue_name=f"{name}-done")
    yield Env(JobStore(), aws.s3(), aws.sqs(), name, done)
    for cached in clear:
        cached.cache_clear()


def running_job(env: Env, input_key: str, outputs: list[bytes], created: datetime) -> JobItem:
    """A RUNNING job with every chunk counted and staged, its output name claimed."""
    job_id = naming.job_id_for(env.bucket, input_key, input_key)
    job = JobItem(
        job_id=job_id, state=JobState.ACCEPTED, bucket=env.bucket, input_key=input_key,
        input_etag="e", input_size=1,
        output_key=env.store.claim_output_key(job_id, input_key, created),
        created_at=created, updated_at=created, deadline_epoch=2**40, expires_at=0,
        chunk_count=len(outputs),
    )  # fmt: skip
    assert env.store.create(job)
    for index, body in enumerate(outputs):
        env.s3.put_object(Bucket=env.bucket, Key=naming.chunk_output_key(job_id, index), Body=body)
        recorded = env.store.record_chunk(job_id, index, rows=body.count(b"\n"))
    assert recorded is not None and recorded.all_done
    return recorded.job


def stored(env: Env, job_id: str) -> JobItem:
    job = env.store.get(job_id)
    assert job is not None
    return job


CREATED = datetime(2026, 11, 25, 3, 33, 2, tzinfo=UTC)


def test_uploads_named_alike_in_one_second_keep_their_own_outputs(env: Env) -> None:
    first = running_job(env, "input/a/b.csv", [b"0.1\n"], CREATED)
    second = running_job(env, "input/a_b.csv", [b"0.2\n0.3\n"], CREATED)
    finish.succeed(first, env.store)
    finish.succeed(second, env.store)
    events = {e["job_id"]: e for e in env.done_events()}
    uris = {events[job.job_id]["output_uri"] for job in (first, second)}
    assert len(uris) == 2
    assert events[first.job_id]["output_uri"].endswith("/output/20261125T033302Z-a_b.csv")
    for job, body in ((first, b"0.1\n"), (second, b"0.2\n0.3\n")):
        key = events[job.job_id]["output_uri"].split("/", 3)[3]
        assert env.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read() == body


def test_errors_report_follows_the_claimed_output_name(env: Env) -> None:
    running_job(env, "input/a_b.csv", [b"1\n"], CREATED)  # holds the plain name
    job = running_job(env, "input/a/b.csv", [b"\n"], CREATED)
    env.s3.put_object(
        Bucket=env.bucket, Key=naming.chunk_errors_key(job.job_id, 0), Body=b"1,1,bad\n"
    )
    assert assemble_errors(job) == naming.errors_key(job.output_key)
    assert job.output_key.endswith(f"-{job.job_id[:8]}.csv")


def test_a_failure_that_wins_during_assembly_leaves_no_output(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = running_job(env, "input/raced.csv", [b"0.5\n"], CREATED)
    real_assemble = assemble

    def assemble_then_reaper(job: JobItem) -> int:
        size = real_assemble(job)
        endings.fail(job.job_id, "timed out", env.store)  # the reaper, in between
        return size

    monkeypatch.setattr(finish, "assemble", assemble_then_reaper)
    finish.succeed(job, env.store)
    assert stored(env, job.job_id).state is JobState.FAILED
    assert env.keys("output/") == []
    assert [e["status"] for e in env.done_events()] == ["FAILED"]


def test_an_assembly_after_the_failure_removes_its_own_output(env: Env) -> None:
    job = running_job(env, "input/late.csv", [b"0.5\n"], CREATED)
    assert env.store.fail(job.job_id, "timed out")  # the reaper's first write ...
    finish.succeed(job, env.store)  # ... then status assembles, holding the job RUNNING
    assert stored(env, job.job_id).state is JobState.FAILED
    assert env.keys("output/") == []
    endings.announce(stored(env, job.job_id), env.store)  # the reaper carries on
    assert env.keys("output/") == []
    assert [e["status"] for e in env.done_events()] == ["FAILED"]


def test_a_failed_job_never_deletes_an_output_it_does_not_own(env: Env) -> None:
    owner = running_job(env, "input/owned.csv", [b"0.5\n"], CREATED)
    finish.succeed(owner, env.store)
    # The dead-letter handler makes a FAILED job up from the event, with an
    # unclaimed output name that may be another job's.
    stranger = owner.model_copy(
        update={"job_id": "f" * 32, "state": JobState.FAILED, "error": "dead letter"}
    )
    assert env.store.create(stranger)
    endings.announce(stranger, env.store)
    assert env.keys("output/") == [owner.output_key]


def test_a_late_write_for_an_ended_job_is_swept(env: Env) -> None:
    job = running_job(env, "input/swept.csv", [b"0.5\n", b"0.6\n"], CREATED)
    endings.fail(job.job_id, "a child failed", env.store)
    assert env.keys(naming.staging_prefix(job.job_id)) == []
    # A child of the ended job was still running: it writes, then reports.
    late_key = naming.chunk_output_key(job.job_id, 1)
    env.s3.put_object(Bucket=env.bucket, Key=late_key, Body=b"0.6\n")
    done = ChunkDone(job_id=job.job_id, chunk_index=1, attempt=1, rows=1, output_key=late_key)
    handle_status_message(done.model_dump_json())
    assert env.keys(naming.staging_prefix(job.job_id)) == []
    assert env.keys("output/") == []


def test_one_unpublishable_job_does_not_stop_the_reaper(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    overdue = []
    for name in ("a", "b", "c"):
        job = running_job(env, f"input/{name}.csv", [b"1\n", b"2\n"], now)
        overdue.append(job.model_copy(update={"deadline_epoch": 0}))
        env.store.client.update_item(
            TableName=env.store.table,
            Key={"job_id": {"S": job.job_id}},
            UpdateExpression="SET deadline_epoch = :zero",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )
    broken = overdue[1].job_id
    publish = publish_done

    def flaky_publish(job: JobItem) -> None:
        if job.job_id == broken:
            raise RuntimeError("EventBridge unavailable")
        publish(job)

    monkeypatch.setattr(endings, "publish_done", flaky_publish)
    run = reaper.reap(env.store, now=now.timestamp())
    assert sorted(run.reaped) == sorted(job.job_id for job in overdue if job.job_id != broken)
    assert run.troubled == [broken]
    assert {e["job_id"] for e in env.done_events()} == set(run.reaped)
    assert stored(env, broken).state is JobState.FAILED  # failed, never announced

    monkeypatch.setattr(endings, "publish_done", publish)
    soon = reaper.reap(env.store, now=now.timestamp() + 1)
    assert soon.announced == []  # within the grace, its finisher may still be at work
    later = reaper.reap(env.store, now=(now + timedelta(minutes=10)).timestamp())
    assert later.announced == [broken]
    assert [e["job_id"] for e in env.done_events()] == [broken]
    assert reaper.reap(env.store, now=(now + timedelta(minutes=20)).timestamp()).announced == []


def test_a_success_whose_announcement_crashed_is_announced_by_the_reaper(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = running_job(env, "input/crashed.csv", [b"0.5\n"], datetime.now(UTC))

    def crash(job: JobItem) -> None:
        raise SystemExit("status killed before the done event")

    publish = publish_done
    monkeypatch.setattr(endings, "publish_done", crash)
    with pytest.raises(SystemExit):
        finish.succeed(job, env.store)
    monkeypatch.setattr(endings, "publish_done", publish)
    run = reaper.reap(env.store, now=datetime.now(UTC).timestamp() + 600)
    assert run.announced == [job.job_id]
    [event] = env.done_events()
    assert event["status"] == "SUCCEEDED" and event["output_uri"].endswith(job.output_key)


@pytest.fixture
def local_batch(env: Env, moto_endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    port = free_port()
    sleeper = f"{sys.executable} -c 'import time; time.sleep(600)'"
    service = Service(
        name="batch",
        command=[
            sys.executable, "-m", "infra.local.batch_runner", "--port", str(port),
            "--job-definition", f"sleeper={sleeper}",
        ],
        env={
            "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
        },
        log_path=tmp_path / "batch.log",
        cwd=REPO,
    )  # fmt: skip
    service.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", f"http://127.0.0.1:{port}")
    aws.batch.cache_clear()
    try:

        def up() -> bool:
            service.check_alive()
            try:
                aws.batch().list_jobs(jobQueue="byom-workers")
            except Exception:
                return False
            return True

        wait_until(up, timeout=30, what="local Batch")
        yield aws.batch()
    finally:
        service.stop()
        aws.batch.cache_clear()


def test_failing_a_job_terminates_its_array(env: Env, local_batch: Any) -> None:
    job = running_job(env, "input/arrayed.csv", [b"1\n", b"2\n"], CREATED)
    submitted = local_batch.submit_job(
        jobName="byom-arrayed",
        jobQueue="byom-workers",
        jobDefinition="sleeper",
        arrayProperties={"size": 2},
        containerOverrides={"environment": [{"name": "BYOM_JOB_ID", "value": job.job_id}]},
    )
    env.store.mark_submitted(job.job_id, submitted["jobId"])

    def status() -> str:
        [described] = local_batch.describe_jobs(jobs=[submitted["jobId"]])["jobs"]
        return str(described["status"])

    wait_until(lambda: status() == "RUNNING", timeout=30, what="array running")
    endings.fail(job.job_id, "a child failed", env.store)
    wait_until(lambda: status() == "FAILED", timeout=30, what="array terminated")
