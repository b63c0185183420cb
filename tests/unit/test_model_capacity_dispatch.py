"""The local SageMaker API's inference-component calls, against a stand-in model server."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from infra.local import inference_components
from infra.local.sagemaker_dispatch import SageMakerDispatch


class ModelServer:
    """What GET|POST /_byom/inference-component answers, and what it was told."""

    def __init__(self, name: str | None) -> None:
        self.document = {
            "name": name,
            "desired_copies": 0,
            "current_copies": 0,
            "wakes": 0,
            "scale_ins": 0,
            "created": 1_700_000_000.0,
            "modified": 1_700_000_001.0,
        }
        self.posted: list[dict[str, Any]] = []

    def __call__(self, document: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self.document["name"] is None:
            return None
        if document is not None:
            self.posted.append(document)
            if document["copies"] and not self.document["desired_copies"]:
                self.document["wakes"] += 1  # type: ignore[operator]
            self.document["desired_copies"] = document["copies"]
        return dict(self.document)


@pytest.fixture
def model_server(monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    server = ModelServer("byom-dev-model-ic")
    monkeypatch.setattr(inference_components, "_model_server", server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("BYOM_ENDPOINT_NAME", "byom-dev-model")
    monkeypatch.setenv("BYOM_REGION", "eu-west-1")
    return server


def call(operation: str, request: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    body = json.dumps(request).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_X_AMZ_TARGET": f"SageMaker.{operation}",
    }
    seen: list[tuple[str, dict[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append((status, dict(headers)))

    def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("answered by moto")

    answer = b"".join(SageMakerDispatch(moto)(environ, start_response))
    return seen[0][0], seen[0][1], json.loads(answer)


def test_describe_answers_the_model_servers_counts(model_server: ModelServer) -> None:
    status, _, answer = call(
        "DescribeInferenceComponent", {"InferenceComponentName": "byom-dev-model-ic"}
    )
    assert status == "200 OK"
    assert answer["InferenceComponentArn"] == (
        "arn:aws:sagemaker:eu-west-1:123456789012:inference-component/byom-dev-model-ic"
    )
    assert (answer["EndpointName"], answer["VariantName"]) == ("byom-dev-model", "AllTraffic")
    assert answer["InferenceComponentStatus"] == "InService"
    assert answer["RuntimeConfig"] == {"DesiredCopyCount": 0, "CurrentCopyCount": 0}
    assert (answer["CreationTime"], answer["ByomWakes"]) == (1_700_000_000.0, 0)


def test_update_sets_the_desired_copies(model_server: ModelServer) -> None:
    request = {
        "InferenceComponentName": "byom-dev-model-ic",
        "DesiredRuntimeConfig": {"CopyCount": 1},
    }
    status, _, answer = call("UpdateInferenceComponentRuntimeConfig", request)
    assert status == "200 OK"
    assert answer == {
        "InferenceComponentArn": (
            "arn:aws:sagemaker:eu-west-1:123456789012:inference-component/byom-dev-model-ic"
        )
    }
    assert model_server.posted == [{"copies": 1}]


@pytest.mark.parametrize("hosted", ["byom-dev-model-ic", None])
def test_an_unknown_component_is_a_validation_exception(
    model_server: ModelServer, hosted: str | None
) -> None:
    model_server.document["name"] = hosted
    for operation, extra in (
        ("DescribeInferenceComponent", {}),
        ("UpdateInferenceComponentRuntimeConfig", {"DesiredRuntimeConfig": {"CopyCount": 1}}),
    ):
        status, headers, answer = call(operation, {"InferenceComponentName": "other-ic", **extra})
        assert status == "400 Bad Request"
        assert headers["x-amzn-ErrorType"] == answer["__type"] == "ValidationException"
        assert answer["message"].startswith('Could not find inference component "arn:aws:')
    assert model_server.posted == []


@pytest.mark.parametrize("copies", [-1, "1", None, True])
def test_a_copy_count_must_be_a_whole_number(model_server: ModelServer, copies: object) -> None:
    request = {
        "InferenceComponentName": "byom-dev-model-ic",
        "DesiredRuntimeConfig": {"CopyCount": copies},
    }
    status, _, answer = call("UpdateInferenceComponentRuntimeConfig", request)
    assert (status, answer["__type"]) == ("400 Bad Request", "ValidationException")
    assert model_server.posted == []
