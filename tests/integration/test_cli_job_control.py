"""byom status, cancel and retry as a user runs them (a subprocess), against a moto server
holding the local stack's tables: a transform job's objects, an upload's job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.local import resources
from infra.local.stack import REPO
from shared.jobs import JobStore
from shared.schemas import JobItem, JobState
from shared.transform import TransformRecord, TransformStatus
from shared.transform_store import TransformStore

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CREATED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def byom(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BYOM_"))}
    command = [sys.executable, "-m", "cli", "--endpoint-url", endpoint, *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def item(job_id: str, minute: int, state: JobState, **changes: Any) -> JobItem:
    created = CREATED + timedelta(minutes=minute)
    values = {
        "job_id": job_id, "state": state, "bucket": "byom-local",
        "input_key": f"input/{job_id}.csv", "input_etag": "e", "input_size": 10,
        "output_key": f"output/{job_id}.csv", "created_at": created, "updated_at": created,
        "deadline_epoch": 2**40, "expires_at": 0, "chunk_count": 2, "chunks_done": 1,
    }  # fmt: skip
    return JobItem.model_validate(values | changes)


@pytest.fixture(scope="module")
def stack_tables(own_moto_endpoint: str) -> dict[str, Any]:
    """The local stack's bucket, queues, bus and tables (as make up makes them), on a
    moto server of this module's own."""
    made = resources.bootstrap(
        own_moto_endpoint, REGION, bucket="byom-local", jobs_table="byom-jobs",
        event_bus="byom-events",
    )  # fmt: skip
    dynamodb = resources.client("dynamodb", own_moto_endpoint, REGION)
    store = JobStore("byom-jobs", client=dynamodb)
    for job in (
        item("u" * 32, 0, JobState.SUCCEEDED, chunks_done=2),
        item("t0" + "0" * 30, 1, JobState.SUCCEEDED, transform_job_name="nightly",
             transform_index=0, chunks_done=2),
        item("t1" + "0" * 30, 1, JobState.RUNNING, transform_job_name="nightly",
             transform_index=1),
        item("f" * 32, 2, JobState.FAILED, error="s3://byom-local/input/f.csv: line 1: bad"),
    ):  # fmt: skip
        assert store.create(job)
    TransformStore("byom-sagemaker", client=dynamodb).create(
        TransformRecord(
            name="nightly", arn="arn:aws:sagemaker:us-east-1:123456789012:transform-job/nightly",
            status=TransformStatus.STOPPING, request={}, model_name="m",
            creation_time=CREATED, last_modified_time=CREATED, objects=2,
        )
    )  # fmt: skip
    return {"store": store, "resources": made, "endpoint": own_moto_endpoint}


def test_status_groups_a_transform_jobs_objects_under_it(stack_tables: dict[str, Any]) -> None:
    listed = byom(stack_tables["endpoint"], "status")
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    assert "transform nightly" in out and "2 objects" in out
    assert out.index("transform nightly") < out.index("0: t0") < out.index("1: t1")
    assert out.index("1: t1") < out.index("u" * 32)  # newest first, objects stay together

    one = byom(stack_tables["endpoint"], "status", "nightly")
    assert one.returncode == 0, one.stderr
    assert "transform job nightly" in one.stdout
    assert "Stopping" in one.stdout  # the transform job's own record speaks for it
    assert "u" * 32 not in one.stdout
    as_json = byom(stack_tables["endpoint"], "status", "nightly", "--json")
    indexes = [json.loads(line)["transform_index"] for line in as_json.stdout.splitlines()]
    assert indexes == [0, 1]


def test_cancel_and_retry_say_what_they_did_or_why_not(stack_tables: dict[str, Any]) -> None:
    endpoint, store = stack_tables["endpoint"], stack_tables["store"]
    running = "t1" + "0" * 30
    cancelled = byom(endpoint, "cancel", running[:8], "--reason", "stopped by hand")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "CANCELLED" in cancelled.stdout
    job = store.get(running)
    assert (job.state, job.error) == (JobState.CANCELLED, "cancelled: stopped by hand")
    again = byom(endpoint, "cancel", running)
    assert again.returncode == 1 and "had ended already: CANCELLED" in again.stderr
    # A transform object is run again by running its transform job again.
    refused = byom(endpoint, "retry", running)
    assert refused.returncode == 1 and "CreateTransformJob" in refused.stderr
    # A job refused at ingest has no plan to resume from.
    unplanned = byom(endpoint, "retry", "f" * 32)
    assert unplanned.returncode == 1 and "upload it again" in unplanned.stderr
    finished = byom(endpoint, "retry", "u" * 32)
    assert finished.returncode == 1 and "is SUCCEEDED" in finished.stderr
    missing = byom(endpoint, "cancel", "0" * 32)
    assert missing.returncode == 1 and "no job" in missing.stderr
