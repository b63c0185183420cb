"""SageMaker's API for models and transform jobs: the JSON 1.1 protocol, one entry point.

``handle(operation, body)`` answers one request (``X-Amz-Target:
SageMaker.<operation>``, a JSON body) with SageMaker's status and body; the
local stack's moto server calls it for the operations in :data:`OPERATIONS`,
and on AWS the Lambda behind a function URL does (``handler.py``). Errors are
SageMaker's: HTTP 400 with ``{"__type": ..., "message": ...}`` and the same
type in ``x-amzn-ErrorType``, which botocore turns into the client's exception
class (``ResourceNotFound``, ``ResourceInUse``) or a ``ClientError`` with the
code (``ValidationException``). Times go out as epoch seconds, as the protocol
writes timestamps.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from services.transform import jobs, models
from services.transform.wording import SageMakerError
from shared.transform_store import TransformStore

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."

Operation = Callable[[TransformStore, dict[str, Any]], dict[str, Any]]
OPERATIONS: dict[str, Operation] = {
    "CreateModel": models.create_model,
    "DescribeModel": models.describe_model,
    "ListModels": models.list_models,
    "DeleteModel": models.delete_model,
    "CreateTransformJob": jobs.create_transform_job,
    "DescribeTransformJob": jobs.describe_transform_job,
    "ListTransformJobs": jobs.list_transform_jobs,
    "StopTransformJob": jobs.stop_transform_job,
}


class Answer(NamedTuple):
    status: int
    body: bytes
    headers: list[tuple[str, str]]


def operation_of(target: str | None) -> str | None:
    """The operation an ``X-Amz-Target`` names, when byom serves it."""
    if not target or not target.startswith(TARGET_PREFIX):
        return None
    operation = target[len(TARGET_PREFIX) :]
    return operation if operation in OPERATIONS else None


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _error(status: int, error_type: str, message: str) -> Answer:
    body = json.dumps({"__type": error_type, "message": message}).encode()
    return Answer(status, body, _headers(error_type))


def _headers(error_type: str | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    return headers


def answer(operation: str, body: bytes, store: TransformStore | None = None) -> Answer:
    """One request's answer: status, body and headers."""
    run = OPERATIONS.get(operation)
    if run is None:
        return _error(400, "UnknownOperationException", f"Unknown operation {operation}")
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return _error(400, "SerializationException", "The request body is not valid JSON.")
    if not isinstance(request, dict):
        return _error(400, "SerializationException", "The request body must be a JSON object.")
    try:
        result = run(store or TransformStore(), request)
    except SageMakerError as exc:
        log.info("refused", extra={"operation": operation, "error": exc.error_type})
        return _error(exc.status, exc.error_type, exc.message)
    except Exception:
        log.exception("failed", extra={"operation": operation})
        return _error(500, "InternalFailure", "The request could not be completed; try again.")
    return Answer(200, json.dumps(result, default=_wire).encode(), _headers())


def handle(operation: str, body: bytes) -> tuple[int, bytes]:
    """``operation``'s answer to ``body``: (HTTP status, JSON body)."""
    status, payload, _ = answer(operation, body)
    return status, payload
