"""The local stack's SageMaker API: byom's operations answered by byom, the rest by moto.

A SageMaker client sends ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``
to the stack's one endpoint. For the operations ``services/transform/api.py``
serves (models and transform jobs), :class:`SageMakerDispatch` answers with it,
in this (the moto) process, with the settings the stack gave the process; the
inference-component calls that wake a scale-to-zero endpoint are answered by
``inference_components.py``, from the model server's copy counts; every other
request goes on to moto unchanged. It sits behind the loopback
guard (``moto_loopback.LoopbackOnly``), as moto does.

Only a moto process the stack started (``AWS_ENDPOINT_URL`` set, pointing at
itself) answers them: byom's API reaches S3, DynamoDB, SQS and EventBridge
through boto3, which must never be sent to AWS from here. A moto server started
by hand keeps moto's own SageMaker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from infra.local import inference_components

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class SageMakerDispatch:
    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not target
            or not os.environ.get("AWS_ENDPOINT_URL")
        ):
            return self._app(environ, start_response)
        if (component_operation := inference_components.operation_of(target)) is not None:
            status, payload, headers = inference_components.answer(
                component_operation, _body(environ)
            )
        else:
            # Imported on the first SageMaker request: moto starts without byom's services.
            from services.transform import api

            operation = api.operation_of(target)
            if operation is None:
                return self._app(environ, start_response)
            status, payload, headers = api.answer(operation, _body(environ))
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [*headers, ("Content-Length", str(len(payload)))],
        )
        return [payload]


def _body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(environ["wsgi.input"].read(length)) if length else b""
