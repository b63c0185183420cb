"""The local AWS answers only this machine's clients, and byom's own SageMaker operations.

moto's server enables CORS for every origin (``flask_cors``), so any web page the user had
open could list the local bucket and read the answer, and a page's form POST (no preflight
needed) could write ``input/`` or ``models/``. Here moto's global CORS is off, every
response loses its ``Access-Control-*`` headers (a bucket CORS rule grants no page anything
either), and :class:`LoopbackOnly` answers 403 to a request that
:func:`shared.loopback.refusal` refuses: a Host other than this server's loopback address
and port (DNS rebinding), a foreign ``Origin``, a ``Sec-Fetch-Site`` from another page.
boto3 and the AWS CLI send neither header, so they pass.

SageMaker's model and transform-job operations are byom's own (``services/transform/api.py``),
answered in this process behind the same guard (``infra/local/sagemaker_dispatch.py``);
moto keeps every other SageMaker operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from moto import server
from moto.moto_server import werkzeug_app

from infra.local.sagemaker_dispatch import SageMakerDispatch
from shared.loopback import refusal

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LoopbackOnly:
    """WSGI middleware: 403 to any request from a web page or for another host (see the
    module's docstring), and no ``Access-Control-*`` header on any answer."""

    def __init__(self, app: WsgiApp, port: int) -> None:
        self._app = app
        self._port = port

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        reason = refusal(
            environ.get("HTTP_HOST"),
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_SEC_FETCH_SITE"),
            self._port,
        )
        if reason is not None:
            body = reason.encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]

        def start_without_cors(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, *rest)

        return self._app(environ, start_without_cors)


def loopback_only() -> None:
    """Serve moto behind :class:`LoopbackOnly`, with its global CORS off (idempotent);
    byom's SageMaker operations are answered by byom (``sagemaker_dispatch.py``)."""
    # Read by create_backend_app when it builds each service's app, so this takes
    # effect although moto.settings read MOTO_DISABLE_GLOBAL_CORS at import.
    werkzeug_app.DISABLE_GLOBAL_CORS = True  # type: ignore[attr-defined]
    run = server.run_simple  # type: ignore[attr-defined]
    if getattr(run, "loopback_only", False):
        return

    def run_simple(hostname: str, port: int, application: WsgiApp, **options: Any) -> None:
        run(hostname, port, LoopbackOnly(SageMakerDispatch(application), port), **options)

    run_simple.loopback_only = True  # type: ignore[attr-defined]
    server.run_simple = run_simple  # type: ignore[attr-defined,assignment]
