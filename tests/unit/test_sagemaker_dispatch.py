"""The moto process's SageMaker dispatch: byom's operations to byom, the rest to moto."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from infra.local.sagemaker_dispatch import SageMakerDispatch


def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"moto"]


def call(target: str | None, body: bytes = b"{}", method: str = "POST") -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if target is not None:
        environ["HTTP_X_AMZ_TARGET"] = target
    seen: list[str] = []
    answer = SageMakerDispatch(moto)(environ, lambda status, headers: seen.append(status))
    return seen[0], b"".join(answer)


def test_byoms_operations_are_answered_by_byom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    status, body = call("SageMaker.CreateTransformJob", b'{"TransformJobName": "a_b"}')
    assert status == "400 Bad Request"
    assert json.loads(body)["__type"] == "ValidationException"
    # Everything else is moto's: other SageMaker operations, other services, GETs.
    assert call("SageMaker.CreateEndpoint") == ("200 OK", b"moto")
    assert call("DynamoDB_20120810.GetItem") == ("200 OK", b"moto")
    assert call(None) == ("200 OK", b"moto")
    assert call("SageMaker.ListModels", method="GET") == ("200 OK", b"moto")


def test_a_moto_server_started_by_hand_keeps_motos_sagemaker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # byom's API reaches AWS services through boto3: never from a process that
    # the stack did not point at itself.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert call("SageMaker.CreateTransformJob") == ("200 OK", b"moto")
