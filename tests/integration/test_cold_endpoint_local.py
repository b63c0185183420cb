"""The local scale-to-zero endpoint, real processes over real sockets: the model server
hosting an inference component answers SageMaker's "no capacity" error while it has
no copies, and the stack's SageMaker API (the moto port) describes and wakes it, as
the scheduler does on AWS."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv

pytestmark = pytest.mark.integration

COMPONENT = "byom-local-model-ic"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
# Long enough that the test sees a woken component before its copy runs; the
# test waits on the copy count, never on the clock.
WAKE_SECONDS = "3"


def rows() -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(5, seed=3, fraud_rate=0.2), buffer)
    return buffer.getvalue().encode()


def runtime(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=NO_RETRIES,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def invoke(client: Any, component: str | None = COMPONENT) -> bytes:
    named = {"InferenceComponentName": component} if component else {}
    response = client.invoke_endpoint(
        EndpointName="byom-model", ContentType="text/csv", Body=rows(), **named
    )
    return bytes(response["Body"].read())


def refusal(client: Any, component: str | None = COMPONENT) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        invoke(client, component)
    response: dict[str, Any] = dict(refused.value.response)
    return response


def control(url: str, copies: int | None = None) -> dict[str, Any]:
    """The model server's own account of its component (and wakes)."""
    request = urllib.request.Request(
        f"{url}/_byom/inference-component",
        data=None if copies is None else json.dumps({"copies": copies}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def faults_left(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_byom/faults", timeout=10) as response:
        return int(json.loads(response.read())["count"])


def set_faults(url: str, status: int, count: int) -> None:
    request = urllib.request.Request(
        f"{url}/_byom/faults",
        data=json.dumps({"status": status, "count": count}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="module")
def cold_stack(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local AWS and a model server that starts with no copies of COMPONENT: the
    settings a test gives a whole stack to start it cold."""
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("cold-stack"),
        settings={
            "BYOM_INFERENCE_COMPONENT": COMPONENT,
            "BYOM_START_COLD": "true",
            "BYOM_WAKE_SECONDS": WAKE_SECONDS,
        },
    )
    stack = LocalStack(config).start_endpoint_only()
    try:
        yield stack
    finally:
        stack.stop()


def model_url(stack: LocalStack) -> str:
    return f"http://127.0.0.1:{stack.model_port}"


def test_every_process_learns_the_component(cold_stack: LocalStack) -> None:
    # The services (scheduler, workers) invoke and wake the component it names.
    assert cold_stack.base_env()["BYOM_INFERENCE_COMPONENT"] == COMPONENT


def test_a_cold_endpoint_answers_no_capacity_and_wakes_once(cold_stack: LocalStack) -> None:
    url = model_url(cold_stack)
    client = runtime(url)
    sagemaker = cold_stack.client("sagemaker")

    # Cold: SageMaker's own error, as botocore parses it, and no model call (an
    # armed fault is still there afterwards: the request never reached the model).
    set_faults(url, 500, 1)
    answer = refusal(client)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"]["Code"] == "ValidationError"
    assert "no capacity" in answer["Error"]["Message"].lower()
    assert "UpdateInferenceComponentRuntimeConfig" in answer["Error"]["Message"]
    assert faults_left(url) == 1
    set_faults(url, 500, 0)

    described = sagemaker.describe_inference_component(InferenceComponentName=COMPONENT)
    assert described["RuntimeConfig"] == {"DesiredCopyCount": 0, "CurrentCopyCount": 0}
    assert described["InferenceComponentStatus"] == "InService"
    assert described["EndpointName"] == cold_stack.config.endpoint_name
    assert described["InferenceComponentArn"].endswith(f":inference-component/{COMPONENT}")

    # Woken twice (two schedulers racing): one wake.
    for _ in range(2):
        updated = sagemaker.update_inference_component_runtime_config(
            InferenceComponentName=COMPONENT, DesiredRuntimeConfig={"CopyCount": 1}
        )
        assert updated["InferenceComponentArn"] == described["InferenceComponentArn"]
    described = sagemaker.describe_inference_component(InferenceComponentName=COMPONENT)
    assert described["RuntimeConfig"]["DesiredCopyCount"] == 1

    def copy_runs() -> bool:
        found = sagemaker.describe_inference_component(InferenceComponentName=COMPONENT)
        return bool(found["RuntimeConfig"]["CurrentCopyCount"] == 1)

    wait_until(copy_runs, timeout=60, what="the woken copy")
    scores = invoke(client).decode().splitlines()
    assert len(scores) == 5
    assert control(url)["wakes"] == 1


def test_the_request_must_name_the_component(cold_stack: LocalStack) -> None:
    client = runtime(model_url(cold_stack))
    for named in (None, "another-ic"):
        answer = refusal(client, named)
        assert answer["Error"]["Code"] == "ValidationError"
        assert COMPONENT in answer["Error"]["Message"]


def test_an_unknown_component_is_a_validation_exception(cold_stack: LocalStack) -> None:
    sagemaker = cold_stack.client("sagemaker")
    for call in (
        lambda: sagemaker.describe_inference_component(InferenceComponentName="no-such-ic"),
        lambda: sagemaker.update_inference_component_runtime_config(
            InferenceComponentName="no-such-ic", DesiredRuntimeConfig={"CopyCount": 1}
        ),
    ):
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "Could not find inference component" in refused.value.response["Error"]["Message"]


def test_a_component_that_never_wakes(serve: Any, model_dir: Path) -> None:
    server = serve(
        model_dir,
        env={
            "BYOM_INFERENCE_COMPONENT": COMPONENT,
            "BYOM_START_COLD": "true",
            "BYOM_WAKE_SECONDS": "inf",
        },
    )
    document = control(server.url, copies=1)
    assert (document["desired_copies"], document["current_copies"]) == (1, 0)
    assert "no capacity" in refusal(runtime(server.url))["Error"]["Message"]
    assert control(server.url)["current_copies"] == 0


def test_a_cold_start_ends_by_itself(serve: Any, model_dir: Path) -> None:
    server = serve(
        model_dir,
        env={
            "BYOM_INFERENCE_COMPONENT": COMPONENT,
            "BYOM_START_COLD": "true",
            "BYOM_COLD_SECONDS": "2",
            "BYOM_WAKE_SECONDS": "inf",
        },
    )
    client = runtime(server.url)
    wait_until(
        lambda: control(server.url)["current_copies"] == 1, timeout=60, what="the cold start's end"
    )
    assert len(invoke(client).splitlines()) == 5
    document = control(server.url)
    # Nobody woke it, and it did change: the cold start ended.
    assert (document["wakes"], document["desired_copies"]) == (0, 1)
    assert document["modified"] > document["created"]


def test_without_a_component_there_is_no_control_route(serve: Any, model_dir: Path) -> None:
    server = serve(model_dir)
    with pytest.raises(urllib.error.HTTPError) as missing:
        control(server.url)
    assert missing.value.code == 404
    missing.value.close()
