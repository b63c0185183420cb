"""A scale-to-zero endpoint found cold, against the real local stack.

The model server plays an endpoint whose inference component has no copies
(``BYOM_START_COLD``): it answers SageMaker's "no capacity" error until woken
through the stack's SageMaker API, and its copy starts ``BYOM_WAKE_SECONDS`` later.
The scheduler wakes it; the job says WAITING_FOR_ENDPOINT meanwhile; the workers
wait for it; every row is scored once. An endpoint that never wakes fails the
job after ``BYOM_ENDPOINT_WAIT_SECONDS``, naming the bound.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item, keys_under
from tests.integration.test_pipeline import expected_predictions

pytestmark = pytest.mark.integration

COMPONENT = "byom-model-ic"
BURST = 20
WAKE_CALL = "SageMaker.UpdateInferenceComponentRuntimeConfig"


def cold_config(model_dir: Any, log_dir: Any, wake_seconds: str, wait_seconds: str) -> StackConfig:
    return StackConfig(
        model_dir=model_dir,
        log_dir=log_dir,
        settings={
            "BYOM_INFERENCE_COMPONENT": COMPONENT,
            "BYOM_ENDPOINT_WAIT_SECONDS": wait_seconds,
            "BYOM_ENDPOINT_WAIT_POLL_MAX_SECONDS": "0.5",
            "BYOM_INVOKE_BACKOFF_SECONDS": "0.05",
            "BYOM_INVOKE_BACKOFF_MAX_SECONDS": "0.2",
        },
        model_server_env={
            "BYOM_INFERENCE_COMPONENT": COMPONENT,
            "BYOM_START_COLD": "true",
            "BYOM_WAKE_SECONDS": wake_seconds,
        },
    )


@pytest.fixture(scope="module")
def cold_stack(model_dir, tmp_path_factory):
    # The copy starts seconds after the wake: long enough for the job to be seen
    # waiting, short enough for the suite.
    config = cold_config(model_dir, tmp_path_factory.mktemp("cold-logs"), "3", "120")
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def dead_stack(model_dir, tmp_path_factory):
    config = cold_config(model_dir, tmp_path_factory.mktemp("dead-logs"), "inf", "3")
    with LocalStack(config) as stack:
        yield stack


def component(stack: LocalStack) -> dict[str, Any]:
    url = f"http://127.0.0.1:{stack.model_port}/_byom/inference-component"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def scale_in(stack: LocalStack) -> None:
    """What the scaling policy does after idle: no copies."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.model_port}/_byom/inference-component",
        data=json.dumps({"copies": 0}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).close()
    wait_until(lambda: component(stack)["current_copies"] == 0, timeout=10, what="scale-in")


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def predictions(s3: Any, bucket: str, key: str) -> np.ndarray:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return np.loadtxt(io.BytesIO(body), dtype=np.float32, ndmin=1)


def spans_of(stack: LocalStack, trace_id: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"trace_id": trace_id})
    with urllib.request.urlopen(f"{stack.traces_url}/v1/spans?{query}", timeout=5) as response:
        spans: list[dict[str, Any]] = json.load(response)["spans"]
    return spans


def test_a_job_against_a_cold_endpoint_wakes_it_waits_and_succeeds(cold_stack, model_dir):
    stack = cold_stack
    s3, dynamodb = stack.client("s3"), stack.client("dynamodb")
    done = stack.subscribe_done_events("cold-done-events")
    assert component(stack)["current_copies"] == 0 and component(stack)["wakes"] == 0
    data = feature_csv(300, seed=5)
    key = "input/cold.csv"
    s3.put_object(Bucket=stack.config.bucket, Key=key, Body=data)
    uri = f"s3://{stack.config.bucket}/{key}"

    # The job says what it waits for, while it waits.
    seen: list[dict[str, Any]] = []

    def waiting() -> bool:
        items = stack.client("dynamodb").scan(TableName=stack.config.jobs_table)["Items"]
        jobs = [i for i in items if i.get("input_key", {}).get("S") == key]
        seen.extend(jobs)
        return any(job["state"]["S"] == "WAITING_FOR_ENDPOINT" for job in jobs)

    wait_until(waiting, timeout=60, what="the job to wait for its endpoint")
    detail = collect_done_events(stack.client("sqs"), done, {uri}, timeout=180)[uri]
    assert detail["status"] == "SUCCEEDED", (detail, stack.logs())

    item = job_item(dynamodb, stack.config.jobs_table, detail["job_id"])
    assert item["endpoint_wake_at"]
    assert float(item["endpoint_waited_seconds"]) > 0  # the cold start, recorded
    assert component(stack)["wakes"] == 1
    got = predictions(s3, stack.config.bucket, detail["output_uri"].split("/", 3)[3])
    np.testing.assert_allclose(got, expected_predictions(model_dir, data), rtol=1e-5)

    # The trace shows the wake-up call and the wait, with the time waited.
    hex_id = detail["trace_id"][2:10] + detail["trace_id"][11:]

    def traced() -> bool:
        names = {span["name"] for span in spans_of(stack, hex_id)}
        return {
            "SageMaker.UpdateInferenceComponentRuntimeConfig",
            "endpoint capacity wait",
        } <= names

    wait_until(traced, timeout=30, what="the wake and the wait in the trace")
    waits = [s for s in spans_of(stack, hex_id) if s["name"] == "endpoint capacity wait"]
    assert all(span["attributes"]["byom.endpoint.waited_seconds"] > 0 for span in waits)


def test_a_burst_against_a_cold_endpoint_wakes_it_once_and_every_file_succeeds(
    cold_stack, model_dir
):
    stack = cold_stack
    scale_in(stack)  # idle again, as after the scaling policy's cooldown
    wakes_before = component(stack)["wakes"]
    s3, bucket = stack.client("s3"), stack.config.bucket
    done = stack.subscribe_done_events("burst-done-events")
    files = {f"input/burst-{i:02d}.csv": feature_csv(50 + i, seed=100 + i) for i in range(BURST)}
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      files.items()))  # fmt: skip
    uris = {f"s3://{bucket}/{key}": key for key in files}
    details = collect_done_events(stack.client("sqs"), done, set(uris), timeout=300)
    assert {d["status"] for d in details.values()} == {"SUCCEEDED"}, stack.logs()
    assert component(stack)["wakes"] == wakes_before + 1  # woken once, for all twenty
    for uri, detail in details.items():
        got = predictions(s3, bucket, detail["output_uri"].split("/", 3)[3])
        data = files[uris[uri]]
        assert len(got) == data.count(b"\n")  # nothing lost, nothing doubled
        np.testing.assert_allclose(got, expected_predictions(model_dir, data), rtol=1e-5)


def test_an_endpoint_that_never_wakes_fails_the_job_after_the_bound(dead_stack):
    stack = dead_stack
    s3, bucket = stack.client("s3"), stack.config.bucket
    done = stack.subscribe_done_events("dead-done-events")
    key = "input/never.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=feature_csv(40, seed=9))
    uri = f"s3://{bucket}/{key}"
    detail = collect_done_events(stack.client("sqs"), done, {uri}, timeout=180)[uri]
    assert detail["status"] == "FAILED", detail
    item = job_item(stack.client("dynamodb"), stack.config.jobs_table, detail["job_id"])
    assert "BYOM_ENDPOINT_WAIT_SECONDS" in item["error"] and "no capacity" in item["error"]
    assert COMPONENT in item["error"]
    assert component(stack)["wakes"] == 1  # it was asked, and did not come
    assert keys_under(s3, bucket, "output/") == []  # no partial output
