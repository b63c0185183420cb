"""Small files end to end without Batch: the scheduler scores them through the endpoint.

Through the real local stack: the job ends as an array's would (state, done
event, output, errors report), and the local Batch runner was never asked.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import boto3
import numpy as np
import pytest

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from services.scheduler import batch_jobs
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item, set_model_faults
from tests.integration.test_pipeline import expected_predictions

pytestmark = pytest.mark.integration

INLINE_MAX = 256 * 1024


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("fast-path-logs"),
        settings={"BYOM_INLINE_MAX_BYTES": str(INLINE_MAX)},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def clients(stack):
    found = {name: stack.client(name) for name in ("s3", "sqs", "dynamodb")}
    found["batch"] = boto3.client(
        "batch", endpoint_url=f"http://127.0.0.1:{stack.batch_port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    found["done"] = stack.subscribe_done_events("fast-path-done-events")
    return found


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def run(stack, clients, key: str, data: bytes, **put) -> dict:
    clients["s3"].put_object(Bucket=stack.config.bucket, Key=key, Body=data, **put)
    uri = f"s3://{stack.config.bucket}/{key}"
    try:
        return collect_done_events(clients["sqs"], clients["done"], {uri}, timeout=120)[uri]
    except TimeoutError:
        print(stack.logs(60))
        raise


def arrays_of(clients, job_id: str) -> list[dict]:
    response = clients["batch"].list_jobs(
        jobQueue="byom-workers",
        filters=[{"name": "JOB_NAME", "values": [batch_jobs.job_name(job_id)]}],
    )
    return response["jobSummaryList"]


def body_of(stack, clients, uri: str) -> bytes:
    key = uri.removeprefix(f"s3://{stack.config.bucket}/")
    return clients["s3"].get_object(Bucket=stack.config.bucket, Key=key)["Body"].read()


def test_small_file_is_scored_without_batch(stack, clients, model_dir):
    data = feature_csv(400, seed=31)
    assert len(data) < INLINE_MAX
    detail = run(stack, clients, "input/small.csv", data)
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["rows"] == 400 and detail["chunks"] == 1
    predictions = np.array(body_of(stack, clients, detail["output_uri"]).split(), dtype=float)
    np.testing.assert_allclose(predictions, expected_predictions(model_dir, data), atol=1e-6)
    item = job_item(clients["dynamodb"], stack.config.jobs_table, detail["job_id"])
    assert item["state"] == "SUCCEEDED" and "batch_job_id" not in item
    assert arrays_of(clients, detail["job_id"]) == []


def with_bad_cell(data: bytes, row: int) -> bytes:
    lines = data.split(b"\n")
    cells = lines[row - 1].split(b",")
    cells[4] = b"1.2.3"
    lines[row - 1] = b",".join(cells)
    return b"\n".join(lines)


def test_bad_row_fails_the_job(stack, clients):
    data = with_bad_cell(feature_csv(50, seed=32), row=7)
    detail = run(stack, clients, "input/small-bad.csv", data)
    assert detail["status"] == "FAILED"
    assert "small-bad.csv, line 7, column 5: '1.2.3' is not a number" in detail["error"]
    assert detail["output_uri"] is None
    assert arrays_of(clients, detail["job_id"]) == []


def test_bad_row_is_skipped_under_the_skip_policy(stack, clients, model_dir):
    good = feature_csv(50, seed=33)
    data = with_bad_cell(good, row=7)
    detail = run(
        stack, clients, "input/small-skip.csv", data, Metadata={"byom-on-bad-rows": "skip"}
    )
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["bad_rows"] == 1 and detail["rows"] == 50
    lines = body_of(stack, clients, detail["output_uri"]).split(b"\n")[:-1]
    assert len(lines) == 50 and lines[6] == b""
    expected = np.delete(expected_predictions(model_dir, good), 6)
    scored = np.array([float(line) for i, line in enumerate(lines) if i != 6])
    np.testing.assert_allclose(scored, expected, atol=1e-6)
    errors = body_of(stack, clients, detail["errors_uri"]).decode()
    assert errors.splitlines() == ["line,column,reason", "7,5,'1.2.3' is not a number"]
    assert arrays_of(clients, detail["job_id"]) == []


def test_file_above_the_threshold_goes_through_batch(stack, clients, model_dir):
    data = feature_csv(2000, seed=34)
    assert len(data) > INLINE_MAX
    detail = run(stack, clients, "input/not-small.csv", data)
    assert detail["status"] == "SUCCEEDED", detail
    predictions = np.array(body_of(stack, clients, detail["output_uri"]).split(), dtype=float)
    np.testing.assert_allclose(predictions, expected_predictions(model_dir, data), atol=1e-6)
    # The done event can come before the array's last child has exited.
    wait_until(
        lambda: [a["status"] for a in arrays_of(clients, detail["job_id"])] == ["SUCCEEDED"],
        timeout=30,
        what="one array, succeeded",
    )


def test_endpoint_down_fails_the_small_job_within_the_retries_and_a_reupload_succeeds(
    stack, clients, model_dir
):
    """The scheduler queue here is the template's: 30 minutes' visibility, 5 receives.
    Left to redelivery, the job would sit RUNNING for hours; the retries end it."""
    assert stack.config.visibility_timeout == 1800 and stack.config.max_receive_count == 5
    model_server = f"http://127.0.0.1:{stack.model_port}"
    data = feature_csv(60, seed=35)
    key = "input/small-endpoint-down.csv"
    set_model_faults(model_server, 500, 10_000)
    try:
        detail = run(stack, clients, key, data)
    finally:
        set_model_faults(model_server, 200, 0)
    assert detail["status"] == "FAILED", detail
    assert "EndpointUnavailable" in detail["error"] and "HTTP 500" in detail["error"]
    assert "failed 6 times" in detail["error"]  # BYOM_INVOKE_ATTEMPTS, as the workers'
    assert detail["output_uri"] is None
    failed = job_item(clients["dynamodb"], stack.config.jobs_table, detail["job_id"])
    assert failed["state"] == "FAILED" and failed["error"] == detail["error"]
    assert arrays_of(clients, detail["job_id"]) == []

    # The endpoint is healthy again: the same bytes, uploaded again, make a job that succeeds.
    uploaded = datetime.fromisoformat(failed["input_last_modified"])
    wait_until(
        lambda: datetime.now(UTC).replace(microsecond=0) > uploaded,
        timeout=5,
        what="the next second (S3 keeps LastModified to the second)",
    )
    retried = run(stack, clients, key, data)
    assert retried["status"] == "SUCCEEDED", retried
    assert retried["job_id"] != detail["job_id"]
    predictions = np.array(body_of(stack, clients, retried["output_uri"]).split(), dtype=float)
    np.testing.assert_allclose(predictions, expected_predictions(model_dir, data), atol=1e-6)
