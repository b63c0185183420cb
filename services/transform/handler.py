"""Lambda entry point: SageMaker's API behind a function URL (AWS_IAM auth).

A function URL event carries the request's headers and body (base64 when
binary); the operation comes from ``X-Amz-Target`` as SageMaker's endpoint
reads it. ``byom transform`` signs and sends exactly what a SageMaker client
would, so the answer is shaped as SageMaker's.
"""

from __future__ import annotations

import base64
from typing import Any

from services.transform.api import answer


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    body: str | bytes = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else str(body).encode()
    target = headers.get("x-amz-target", "")
    operation = target.removeprefix("SageMaker.") if target.startswith("SageMaker.") else ""
    status, payload, response_headers = answer(operation, raw)
    return {
        "statusCode": status,
        "headers": dict(response_headers),
        "body": payload.decode(),
        "isBase64Encoded": False,
    }
