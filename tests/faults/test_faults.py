"""Faults against the real local stack: each ends in exactly one terminal state.

Every test checks the job's end state, its output (correct, or absent) and that
nothing stray is left under output/.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.local import resources
from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from shared import naming
from shared.jobs import JobStore
from shared.schemas import ChunkDone, JobItem, JobState
from tests.features import write_feature_csv
from tests.integration.helpers import (
    collect_done_events,
    job_item,
    keys_under,
    set_model_faults,
)
from tests.integration.procs import workers_of
from tests.integration.test_pipeline import expected_predictions

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("fault-stack-logs"),
        visibility_timeout=4,
        max_receive_count=2,
        reaper_every_seconds=1.0,
        settings={
            "BYOM_CHUNK_BYTES": str(1 * MIB),
            "BYOM_CHUNKS_PER_CHILD": "4",
            "BYOM_WORKER_ATTEMPTS": "3",
            "BYOM_INVOKE_ATTEMPTS": "3",
            "BYOM_INVOKE_BACKOFF_SECONDS": "0.05",
            "BYOM_INVOKE_BACKOFF_MAX_SECONDS": "0.2",
            "BYOM_INLINE_MAX_BYTES": "0",  # these faults are the workers': always Batch
        },
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def aws(stack):
    clients = {name: stack.client(name) for name in ("s3", "sqs", "dynamodb", "events")}
    clients["done"] = stack.subscribe_done_events("fault-done-events")
    return clients


@pytest.fixture
def store(stack, aws):
    return JobStore(table=stack.config.jobs_table, client=aws["dynamodb"])


@pytest.fixture(scope="module")
def batch(stack):
    """A Batch client of the local runner: attempts are counted where Batch counts them."""
    return resources.client("batch", f"http://127.0.0.1:{stack.batch_port}", stack.config.region)


@pytest.fixture(autouse=True)
def no_faults_left(stack):
    yield
    set_faults(stack, 200, 0)


def set_faults(stack: LocalStack, status: int, count: int) -> None:
    set_model_faults(f"http://127.0.0.1:{stack.model_port}", status, count)


def csv_bytes(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def wait_done(stack, aws, key: str, timeout: float = 120) -> dict:
    uri = f"s3://{stack.config.bucket}/{key}"
    try:
        return collect_done_events(aws["sqs"], aws["done"], {uri}, timeout)[uri]
    except TimeoutError:
        print(stack.logs(60))
        raise


def jobs_for(aws, stack, key: str) -> list[dict]:
    items = aws["dynamodb"].scan(TableName=stack.config.jobs_table)["Items"]
    return [
        {k: next(iter(v.values())) for k, v in item.items()}
        for item in items
        if item.get("input_key", {}).get("S") == key  # job items only
    ]


def queues_drained(aws, stack, names: tuple[str, ...]) -> bool:
    """No message waiting or in flight in these queues (checked upstream first)."""
    for name in names:
        attributes = aws["sqs"].get_queue_attributes(
            QueueUrl=stack.resources.queue_urls[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if any(int(count) for count in attributes.values()):
            return False
    return True


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of a process (R, S, T, Z...), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def stop(pid: int) -> bool:
    """SIGSTOP a process; True once it is stopped, False if it had already exited."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    wait_until(
        lambda: process_state(pid) in ("T", "Z", None), timeout=10, what=f"process {pid} stopped"
    )
    return process_state(pid) == "T"


def batch_environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def batch_job_id(store, job_id: str) -> str | None:
    job = store.get(job_id)
    return job.batch_job_id if job is not None else None


def describe(batch, batch_job_id: str) -> dict[str, Any]:
    (described,) = batch.describe_jobs(jobs=[batch_job_id])["jobs"]
    return described


def outputs_named(aws, stack, name: str) -> list[str]:
    return [k for k in keys_under(aws["s3"], stack.config.bucket, "output/") if k.endswith(name)]


def assert_correct_output(aws, stack, detail: dict, data: bytes, model_dir) -> None:
    assert detail["status"] == "SUCCEEDED", detail
    key = detail["output_uri"].split("/", 3)[3]
    body = aws["s3"].get_object(Bucket=stack.config.bucket, Key=key)["Body"].read()
    predictions = np.array(body.split(), dtype=np.float64)
    np.testing.assert_allclose(predictions, expected_predictions(model_dir, data), atol=1e-6)
    # Staging is removed just after the done event goes out (the event first, so
    # that a crash in between repeats the event rather than losing it).
    staging = f"staging/{detail['job_id']}/"
    wait_until(
        lambda: keys_under(aws["s3"], stack.config.bucket, staging) == [],
        timeout=30,
        what="staging removed",
    )


def test_duplicate_events_and_reuploads_make_one_job(stack, aws, model_dir):
    data = csv_bytes(2000, seed=21)
    key = "input/dupes.csv"
    put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    # The same object announced again, as SQS redelivery or a replay would.
    event = {
        "version": "0", "id": "dup", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": datetime.now(UTC).isoformat(), "region": "us-east-1",
        "resources": [], "detail": {"bucket": {"name": stack.config.bucket}, "object": {
            "key": key, "size": len(data), "etag": put["ETag"].strip('"')}},
    }  # fmt: skip
    for _ in range(3):
        aws["sqs"].send_message(
            QueueUrl=stack.resources.queue_urls["ingest"], MessageBody=json.dumps(event)
        )
    # ... and the same bytes uploaded again under the same key.
    aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    detail = wait_done(stack, aws, key)
    assert_correct_output(aws, stack, detail, data, model_dir)
    # Every duplicate has been handled once ingest and the scheduler have nothing
    # left, waiting or in flight: a second job would exist by then.
    wait_until(
        lambda: queues_drained(aws, stack, ("ingest", "scheduler")),
        timeout=60,
        what="ingest and scheduler queues drained",
    )
    assert len(jobs_for(aws, stack, key)) == 1
    assert outputs_named(aws, stack, "-dupes.csv") == [detail["output_uri"].split("/", 3)[3]]

    changed = csv_bytes(1500, seed=22)
    aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=changed)
    second = wait_done(stack, aws, key)
    assert second["job_id"] != detail["job_id"] and second["rows"] == 1500
    assert len(jobs_for(aws, stack, key)) == 2


def test_worker_killed_after_a_chunk_is_retried_and_reuses_that_chunk(
    stack, aws, store, batch, model_dir
):
    """A child is killed after finishing a chunk: Batch retries it, and the retry
    takes the finished chunk's output as it is rather than scoring it again."""
    data = csv_bytes(40_000, seed=23)  # ~24 chunks: 6 children of 4, two at a time
    key = "input/killed-worker.csv"
    s3, bucket = aws["s3"], stack.config.bucket
    put = s3.put_object(Bucket=bucket, Key=key, Body=data)
    job_id = naming.job_id_for(bucket, key, put["ETag"])
    batch_pid = stack.services["batch"].pid
    victim: dict[str, Any] = {}

    def freeze_a_child_that_finished_a_chunk() -> bool:
        finished = keys_under(s3, bucket, naming.chunk_outputs_prefix(job_id))
        workers = {pid: batch_environment(pid) for pid in workers_of(batch_pid, job_id)}
        for output in finished:
            chunk = int(output.rsplit("/", 1)[1].split(".")[0])
            for pid, env in workers.items():
                size = int(env.get("BYOM_ARRAY_SIZE", "1"))
                index = int(env.get("AWS_BATCH_JOB_ARRAY_INDEX", "0"))
                if env.get("AWS_BATCH_JOB_ATTEMPT") != "1" or chunk % size != index:
                    continue
                # Stopped, it can neither finish nor exit until it is killed.
                if stop(pid):
                    victim.update(pid=pid, chunk=chunk, index=index, output=output)
                    return True
        return False

    wait_until(freeze_a_child_that_finished_a_chunk, timeout=90, what="a worker with a chunk done")
    # Mark the finished output (same predictions, a space before each newline):
    # a retry that scored the chunk again would overwrite the mark.
    head = s3.head_object(Bucket=bucket, Key=victim["output"])
    original = s3.get_object(Bucket=bucket, Key=victim["output"])["Body"].read()
    marked = original.replace(b"\n", b" \n")
    s3.put_object(Bucket=bucket, Key=victim["output"], Body=marked, Metadata=head["Metadata"])
    os.kill(victim["pid"], signal.SIGKILL)

    detail = wait_done(stack, aws, key, timeout=180)
    assert_correct_output(aws, stack, detail, data, model_dir)
    assert detail["rows"] == 40_000
    item = job_item(aws["dynamodb"], stack.config.jobs_table, detail["job_id"])
    assert int(item["chunks_done"]) == int(item["chunk_count"])
    # Batch ran the killed child again (a plain job is its own only child). The
    # job can be done before that retry ends (the victim may have finished its
    # chunks before it was frozen), so wait for Batch to record the retry.
    child_id = item["batch_job_id"]
    if "arrayProperties" in describe(batch, child_id):
        child_id = f"{child_id}:{victim['index']}"

    def exit_codes() -> list[int]:
        return [a["container"]["exitCode"] for a in describe(batch, child_id)["attempts"]]

    wait_until(lambda: len(exit_codes()) >= 2, timeout=60, what="the killed child's retry")
    assert exit_codes() == [-9, 0]
    # ... and the retry reused the chunk: the output holds the marked bytes.
    output = s3.get_object(Bucket=bucket, Key=detail["output_uri"].split("/", 3)[3])
    assert marked in output["Body"].read()


def test_throttling_and_server_errors_are_retried(stack, aws, model_dir):
    data = csv_bytes(3000, seed=24)
    key = "input/throttled.csv"
    set_faults(stack, 429, 4)
    aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    assert_correct_output(aws, stack, wait_done(stack, aws, key), data, model_dir)
    set_faults(stack, 500, 2)
    key = "input/server-errors.csv"
    aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    assert_correct_output(aws, stack, wait_done(stack, aws, key), data, model_dir)


def test_chunk_failing_every_attempt_fails_the_job(stack, aws):
    set_faults(stack, 500, 10_000)
    key = "input/endpoint-down.csv"
    aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=csv_bytes(100, seed=25))
    detail = wait_done(stack, aws, key, timeout=120)
    set_faults(stack, 200, 0)
    assert detail["status"] == "FAILED"
    assert "chunk 0 failed after 3 attempt(s)" in detail["error"]
    assert "EndpointUnavailable" in detail["error"] and "HTTP 500" in detail["error"]
    assert outputs_named(aws, stack, "-endpoint-down.csv") == []


def test_status_crash_between_counting_and_assembling(stack, aws, store, model_dir):
    """The status handler recorded every chunk and died before assembling.

    With the status poller stopped, completions pile up; the test records them the
    way the handler does and then lets them be redelivered to a fresh poller.
    """
    status = stack.services["status"]
    status.signal_group(signal.SIGKILL)
    status.process.wait()
    data = csv_bytes(6000, seed=26)
    key = "input/status-crash.csv"
    put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    job_id = naming.job_id_for(stack.config.bucket, key, put["ETag"])
    queue = stack.resources.queue_urls["status"]
    recorded: set[int] = set()
    deadline = time.monotonic() + 90
    chunk_count = None
    while time.monotonic() < deadline and (chunk_count is None or len(recorded) < chunk_count):
        for message in (
            aws["sqs"]
            .receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=2
            )
            .get("Messages", [])
        ):
            if json.loads(message["Body"]).get("source") == "aws.batch":
                continue  # a state change of an earlier test's array, not ours to count
            done = ChunkDone.model_validate_json(message["Body"])
            if done.job_id != job_id:
                continue
            result = store.record_chunk(done.job_id, done.chunk_index, done.rows)
            chunk_count = result.job.chunk_count
            recorded.add(done.chunk_index)
    assert chunk_count and len(recorded) == chunk_count
    job = jobs_for(aws, stack, key)[0]
    assert job["state"] == "RUNNING" and int(job["chunks_done"]) == chunk_count

    status.start()  # the redelivered completions are all duplicates now
    detail = wait_done(stack, aws, key)
    assert_correct_output(aws, stack, detail, data, model_dir)


def fabricated_job(job_id: str, **changes) -> JobItem:
    now = datetime.now(UTC)
    values = dict(
        job_id=job_id, state=JobState.ACCEPTED, bucket="byom-local",
        input_key=f"input/{job_id}.csv", input_etag="e", input_size=1,
        output_key=f"output/x-{job_id}.csv", created_at=now, updated_at=now,
        deadline_epoch=int(now.timestamp()) + 3600, expires_at=0, chunk_count=1,
    )  # fmt: skip
    values.update(changes)
    return JobItem(**values)


def test_poison_message_goes_to_dlq_and_fails_its_job(stack, aws, store):
    # A completion whose chunk output is missing: assembly fails on every delivery.
    job = fabricated_job("poisoned")
    assert store.create(job)
    aws["sqs"].send_message(
        QueueUrl=stack.resources.queue_urls["status"],
        MessageBody=ChunkDone(
            job_id=job.job_id, chunk_index=0, attempt=1, rows=5
        ).model_dump_json(),
    )
    detail = wait_done(stack, aws, job.input_key, timeout=120)
    assert detail["status"] == "FAILED"
    assert "could not be processed after repeated attempts" in detail["error"]
    assert store.get(job.job_id).state is JobState.FAILED
    assert outputs_named(aws, stack, "-poisoned.csv") == []


def test_reaper_fails_jobs_past_their_deadline(stack, aws, store):
    stuck = fabricated_job("stuck", state=JobState.ACCEPTED, deadline_epoch=int(time.time()) - 1)
    assert store.create(stuck)
    detail = wait_done(stack, aws, stuck.input_key, timeout=60)
    assert detail["status"] == "FAILED"
    assert detail["error"].startswith("timed out")
    assert "last known state ACCEPTED, 0 of 1 chunks done" in detail["error"]


def test_local_aws_frozen_mid_job(stack, aws, model_dir):
    """moto cannot persist its state across a restart, so the local AWS is frozen
    (SIGSTOP) instead: every service sees its calls hang, then carries on."""
    data = csv_bytes(20_000, seed=27)
    key = "input/frozen-aws.csv"
    put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    job_id = naming.job_id_for(stack.config.bucket, key, put["ETag"])
    moto = stack.services["moto"]
    wait_until(
        lambda: bool(workers_of(stack.services["batch"].pid, job_id)),
        timeout=60,
        what="a worker of the job",
    )
    os.kill(moto.pid, signal.SIGSTOP)
    try:
        time.sleep(5)
    finally:
        os.kill(moto.pid, signal.SIGCONT)
    detail = wait_done(stack, aws, key, timeout=180)
    assert_correct_output(aws, stack, detail, data, model_dir)
    assert len(jobs_for(aws, stack, key)) == 1


def test_worker_killed_on_every_attempt_fails_the_job(stack, aws, store, batch):
    """No completion ever comes; Batch's own FAILED state change must end the job.

    The model server is stopped (SIGSTOP) meanwhile, so no attempt can finish its
    chunk before it is killed, however late the test sees it; Batch itself says
    how many attempts it made.
    """
    key = "input/always-killed.csv"
    model = stack.services["model-server"]
    os.kill(model.pid, signal.SIGSTOP)
    try:
        put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=csv_bytes(50, seed=28))
        job_id = naming.job_id_for(stack.config.bucket, key, put["ETag"])
        batch_pid = stack.services["batch"].pid
        killed: set[int] = set()

        def kill_attempts_until_batch_gives_up() -> bool:
            # only this job's workers: children of earlier tests may still be exiting
            for pid in set(workers_of(batch_pid, job_id)) - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
            submitted = batch_job_id(store, job_id)
            return submitted is not None and describe(batch, submitted)["status"] == "FAILED"

        wait_until(kill_attempts_until_batch_gives_up, timeout=90, what="Batch giving up")
    finally:
        os.kill(model.pid, signal.SIGCONT)
    attempts = describe(batch, batch_job_id(store, job_id))["attempts"]
    assert [attempt["container"]["exitCode"] for attempt in attempts] == [-9, -9, -9]
    found = wait_done(stack, aws, key, timeout=90)
    assert found["status"] == "FAILED"
    assert "failed after 3 attempt(s)" in found["error"]
    assert "exited with code -9" in found["error"]
    assert outputs_named(aws, stack, "-always-killed.csv") == []
