"""The local stack's SageMaker API for inference components: the two calls that wake
a scale-to-zero endpoint.

``DescribeInferenceComponent`` and ``UpdateInferenceComponentRuntimeConfig`` are
answered for the component the model server hosts (``BYOM_INFERENCE_COMPONENT``
there), by asking the model server, which holds the copy counts
(``model/server/capacity.py``), over ``GET|POST /_byom/inference-component``.
The model server is the stack's SageMaker runtime endpoint, so this module finds
it where every service does: ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``.

Answers and errors are SageMaker's (JSON 1.1: ``__type`` and ``message``, the same
type in ``x-amzn-ErrorType``): a component the model server does not host is a
``ValidationException`` "Could not find inference component", as SageMaker words
its missing resources. Describe adds one field of byom's own, ``ByomWakes``
(botocore drops members its model does not know), counting the updates that
raised the desired copies from 0, so a test can assert a burst woke it once.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.errors import ByomError
from shared.settings import get_settings

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
CONTROL_PATH = "/_byom/inference-component"
RUNTIME_URL_VARIABLE = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
VARIANT_NAME = "AllTraffic"
# SageMaker's bound on InferenceComponentName (1 to 63 characters).
MAX_NAME = 63


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: list[tuple[str, str]]


class Refused(ByomError):
    """A request SageMaker would refuse: its error type and message."""

    def __init__(self, error_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error_type, self.message, self.status = error_type, message, status


def _arn(kind: str, name: str) -> str:
    settings = get_settings()
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:{kind}/{name}"


def _model_server(document: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model server's component document (after setting `document`), or None when
    it hosts no inference component."""
    base = os.environ.get(RUNTIME_URL_VARIABLE)
    if not base:
        return None
    request = urllib.request.Request(
        base.rstrip("/") + CONTROL_PATH,
        data=None if document is None else json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if document is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as error:
        with error:
            if error.code == 404:  # no component hosted: the route is not there
                return None
            raise Refused(
                "InternalFailure", f"the model server answered {error.code}", 500
            ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise Refused(
            "ServiceUnavailable", f"the model server is unreachable: {exc}", 503
        ) from None


def _hosted(request: dict[str, Any]) -> dict[str, Any]:
    """The model server's document for the component `request` names, if it hosts it."""
    name = request.get("InferenceComponentName")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise Refused(
            "ValidationException",
            "1 validation error detected: Value at 'inferenceComponentName' failed to "
            "satisfy constraint: Member must have length between 1 and 63",
        )
    hosted = _model_server()
    if hosted is None or hosted.get("name") != name:
        raise Refused(
            "ValidationException",
            f'Could not find inference component "{_arn("inference-component", name)}".',
        )
    return hosted


def describe_inference_component(request: dict[str, Any]) -> dict[str, Any]:
    hosted = _hosted(request)
    endpoint = get_settings().endpoint_name
    return {
        "InferenceComponentName": hosted["name"],
        "InferenceComponentArn": _arn("inference-component", hosted["name"]),
        "EndpointName": endpoint,
        "EndpointArn": _arn("endpoint", endpoint),
        "VariantName": VARIANT_NAME,
        "InferenceComponentStatus": "InService",
        "RuntimeConfig": {
            "DesiredCopyCount": hosted["desired_copies"],
            "CurrentCopyCount": hosted["current_copies"],
        },
        "CreationTime": hosted["created"],
        "LastModifiedTime": hosted["modified"],
        "ByomWakes": hosted["wakes"],
    }


def update_inference_component_runtime_config(request: dict[str, Any]) -> dict[str, Any]:
    desired = request.get("DesiredRuntimeConfig")
    copies = desired.get("CopyCount") if isinstance(desired, dict) else None
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
        raise Refused(
            "ValidationException",
            "1 validation error detected: Value at 'desiredRuntimeConfig.copyCount' failed "
            "to satisfy constraint: Member must have value greater than or equal to 0",
        )
    hosted = _hosted(request)
    _model_server({"copies": copies})
    return {"InferenceComponentArn": _arn("inference-component", hosted["name"])}


OPERATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "DescribeInferenceComponent": describe_inference_component,
    "UpdateInferenceComponentRuntimeConfig": update_inference_component_runtime_config,
}


def operation_of(target: str | None) -> str | None:
    """The operation an ``X-Amz-Target`` names, when this module serves it."""
    if not target or not target.startswith(TARGET_PREFIX):
        return None
    operation = target[len(TARGET_PREFIX) :]
    return operation if operation in OPERATIONS else None


def _headers(error_type: str | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return headers


def answer(operation: str, body: bytes) -> Answer:
    """One request's answer: status, body and headers."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return _error(Refused("SerializationException", "The request body is not valid JSON."))
    try:
        if not isinstance(request, dict):
            raise Refused("SerializationException", "The request body must be a JSON object.")
        result = OPERATIONS[operation](request)
    except Refused as refused:
        log.info("%s refused: %s %s", operation, refused.error_type, refused.message)
        return _error(refused)
    return Answer(200, json.dumps(result).encode(), _headers())


def _error(refused: Refused) -> Answer:
    body = json.dumps({"__type": refused.error_type, "message": refused.message}).encode()
    return Answer(refused.status, body, _headers(refused.error_type))
