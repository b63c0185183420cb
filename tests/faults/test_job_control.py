"""byom cancel and byom retry against the real local stack, run as a user runs them.

One child scores one chunk at a time, each chunk one request, and a child's
failure is reported at once (one attempt): a chunk that the endpoint refuses
fails the job there, with the chunks before it finished. The worker is frozen
(SIGSTOP) at the point a test needs, so nothing depends on timing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from cli import joblogs
from infra.local.processes import wait_until
from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from shared import naming, resume
from shared.jobs import JobStore
from shared.schemas import ChunkPlan, JobState
from tests.faults.test_faults import csv_bytes, process_state
from tests.integration.helpers import collect_done_events, keys_under, set_model_faults
from tests.integration.procs import workers_of
from tests.integration.test_pipeline import expected_predictions

pytestmark = pytest.mark.integration

KIB = 1024


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("job-control-logs"),
        reaper_every_seconds=1.0,
        settings={
            "BYOM_CHUNK_BYTES": str(64 * KIB),
            "BYOM_INLINE_MAX_BYTES": "0",
            "BYOM_MAX_ARRAY_CHILDREN": "1",
            "BYOM_WORKER_CHUNKS_IN_FLIGHT": "1",
            "BYOM_WORKER_ATTEMPTS": "1",
            "BYOM_INVOKE_ATTEMPTS": "1",
        },
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def aws(stack):
    clients = {name: stack.client(name) for name in ("s3", "sqs", "dynamodb")}
    clients["done"] = stack.subscribe_done_events("job-control-done-events")
    return clients


@pytest.fixture
def store(stack, aws):
    return JobStore(table=stack.config.jobs_table, client=aws["dynamodb"])


def byom(stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BYOM_"))}
    command = [sys.executable, "-m", "cli", "--endpoint-url", stack.endpoint_url, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def done_event(stack, aws, key: str, timeout: float = 180) -> dict[str, Any]:
    uri = f"s3://{stack.config.bucket}/{key}"
    try:
        return collect_done_events(aws["sqs"], aws["done"], {uri}, timeout)[uri]
    except TimeoutError:
        print(stack.logs(80))
        raise


def freeze_worker_after_a_chunk(stack, aws, job_id: str) -> int:
    """SIGSTOP the job's worker once a chunk output is written; returns its pid."""
    frozen: list[int] = []

    def frozen_after_a_chunk() -> bool:
        if not keys_under(aws["s3"], stack.config.bucket, naming.chunk_outputs_prefix(job_id)):
            return False
        for pid in workers_of(stack.services["batch"].pid, job_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)
                return True
        return False

    wait_until(frozen_after_a_chunk, timeout=120, what="a worker with a chunk done")
    pid = frozen[0]
    wait_until(lambda: process_state(pid) in ("T", None), timeout=10, what="worker stopped")
    return pid


def thaw(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def model_faults(stack, status: int, count: int) -> None:
    set_model_faults(f"http://127.0.0.1:{stack.model_port}", status, count)


def mark_kept_outputs(aws, stack, job_id: str) -> dict[str, bytes]:
    """Mark each kept chunk output (a space before each newline, same predictions):
    a retry that scored a kept chunk again would overwrite its mark."""
    s3, bucket = aws["s3"], stack.config.bucket
    marked = {}
    for key in keys_under(s3, bucket, resume.kept_prefix(job_id) + "out/"):
        stored = s3.get_object(Bucket=bucket, Key=key)
        marked[key] = stored["Body"].read().replace(b"\n", b" \n")
        s3.put_object(Bucket=bucket, Key=key, Body=marked[key], Metadata=stored["Metadata"])
    return marked


def check_output(aws, stack, detail, data: bytes, model_dir, marked: dict[str, bytes]) -> None:
    import numpy as np

    key = detail["output_uri"].split("/", 3)[3]
    body = aws["s3"].get_object(Bucket=stack.config.bucket, Key=key)["Body"].read()
    predictions = np.array(body.split(), dtype=np.float64)
    np.testing.assert_allclose(predictions, expected_predictions(model_dir, data), atol=1e-6)
    for chunk in marked.values():
        assert chunk in body


def test_a_job_failed_on_one_chunk_is_retried_scoring_only_the_chunks_left(
    stack, aws, store, model_dir
):
    data = csv_bytes(2000, seed=41)
    key = "input/retried.csv"
    put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    job_id = naming.job_id_for(stack.config.bucket, key, put["ETag"])
    pid = freeze_worker_after_a_chunk(stack, aws, job_id)
    model_faults(stack, 500, 10_000)  # from here on the endpoint fails
    thaw(pid)
    failed = done_event(stack, aws, key)
    model_faults(stack, 200, 0)
    assert failed["status"] == "FAILED" and "HTTP 500" in failed["error"]
    job = store.get(job_id)
    assert job is not None and job.state is JobState.FAILED
    finished = set(job.done_chunks)
    assert 0 < len(finished) < job.chunk_count
    marked = mark_kept_outputs(aws, stack, job_id)
    assert len(marked) == len(finished)

    result = byom(stack, "retry", job_id[:12], "--wait", "--timeout", "240")
    assert result.returncode == 0, result.stdout + result.stderr
    left = job.chunk_count - len(finished)
    assert f"{left} of {job.chunk_count} chunks to score" in result.stdout
    assert "SUCCEEDED" in result.stdout
    succeeded = done_event(stack, aws, key)
    assert (succeeded["status"], succeeded["retries"], succeeded["rows"]) == ("SUCCEEDED", 1, 2000)
    check_output(aws, stack, succeeded, data, model_dir, marked)
    # The retried run's plan had the chunks left and nothing else, in a new array.
    retried = store.get(job_id)
    assert retried is not None and retried.retries == 1
    plan_key = f"{naming.staging_prefix(job_id)}plan-retry-1.json"
    assert plan_key not in keys_under(aws["s3"], stack.config.bucket, "staging/")  # tidied
    scored = [
        int(line.record["chunk"])
        for line in joblogs.from_files(stack.log_dir, job_id)
        if line.record.get("message") == "chunk scored"
    ]
    # Each chunk scored once: the counted ones by the first run, the rest by the retry.
    assert sorted(scored) == list(range(job.chunk_count))
    assert keys_under(aws["s3"], stack.config.bucket, resume.kept_prefix(job_id)) == []


def test_byom_cancel_stops_a_running_job_and_byom_retry_finishes_it(stack, aws, store, model_dir):
    data = csv_bytes(2000, seed=42)
    key = "input/cancelled.csv"
    put = aws["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    job_id = naming.job_id_for(stack.config.bucket, key, put["ETag"])
    pid = freeze_worker_after_a_chunk(stack, aws, job_id)
    result = byom(stack, "cancel", job_id, "--reason", "wrong model")
    thaw(pid)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CANCELLED" in result.stdout
    cancelled = done_event(stack, aws, key)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["error"] == "cancelled: wrong model" and cancelled["output_uri"] is None
    # The thawed child's chunk is not counted and nothing is assembled; the array ends.
    job = store.get(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    wait_until(
        lambda: not workers_of(stack.services["batch"].pid, job_id), timeout=60, what="array ended"
    )
    outputs = keys_under(aws["s3"], stack.config.bucket, "output/")
    assert [k for k in outputs if "cancelled" in k] == []
    assert byom(stack, "cancel", job_id).returncode == 1  # ended already: said so
    # Its record stays, and a retry takes it from the chunks it had counted.
    plan = ChunkPlan.model_validate_json(
        aws["s3"]
        .get_object(Bucket=stack.config.bucket, Key=resume.kept_prefix(job_id) + "plan.json")[
            "Body"
        ]
        .read()
    )
    assert len(plan.chunks) == job.chunk_count
    result = byom(stack, "retry", job_id, "--wait", "--timeout", "240")
    assert result.returncode == 0, result.stdout + result.stderr
    succeeded = done_event(stack, aws, key)
    assert (succeeded["status"], succeeded["retries"]) == ("SUCCEEDED", 1)
    check_output(aws, stack, succeeded, data, model_dir, {})
