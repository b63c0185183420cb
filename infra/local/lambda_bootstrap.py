"""A Lambda execution environment run from a deployment bundle, as Lambda runs one.

Started by the local poller's :class:`~infra.local.poller.Runtime` when the stack
serves the functions from their bundle (``python -m infra.package_lambda lambda``,
unzipped) rather than from the working tree:

    python3.12 -I -S lambda_bootstrap.py --fd 3 --path BUNDLE --path RUNTIME \\
        services.status.handler:handler byom-status 300

``-I -S``: no site-packages, no user site, no ``PYTHON*`` variables, not even this
file's own folder on ``sys.path``; only the standard library, the bundle and the
folders given with ``--path`` (Lambda's ``/var/task`` and the runtime's own boto3),
in that order. So a module the bundle lacks fails here as it would on Lambda.

This file imports the standard library only. It speaks the poller's protocol over
the inherited socket ``--fd``: ``("ready", None)`` or ``("init_error", traceback)``
once, then an event in, ``("ok", result)`` or ``("error", traceback)`` out.
"""

from __future__ import annotations

import argparse
import importlib
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_seconds: int) -> None:
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.aws_request_id = str(uuid.uuid4())
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = ""
        self.log_group_name = ""
        self.log_stream_name = ""
        self._started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def load_handler(spec: str) -> Callable[[Any, Any], Any]:
    """``module:attribute`` (``handler`` when no attribute is named), imported."""
    module_name, _, attribute = spec.partition(":")
    handler: Callable[[Any, Any], Any] = getattr(
        importlib.import_module(module_name), attribute or "handler"
    )
    return handler


def serve(spec: str, function_name: str, timeout_seconds: int, conn: Connection) -> None:
    """The execution environment: import the handler, then run one event at a time.
    The poller's in-process runtimes and a bundle's bootstrap run this same loop."""
    try:
        handler = load_handler(spec)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            event = conn.recv()
        except EOFError:  # the poller is gone
            return
        context = LambdaContext(function_name, timeout_seconds)
        try:
            conn.send(("ok", handler(event, context) or {}))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("handler")
    parser.add_argument("function_name")
    parser.add_argument("timeout_seconds", type=int)
    args = parser.parse_args()
    sys.path[:0] = args.path
    serve(
        args.handler,
        args.function_name,
        args.timeout_seconds,
        Connection(socket.socket(fileno=args.fd).detach()),
    )


if __name__ == "__main__":
    main()
