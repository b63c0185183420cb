"""Run the model server.

    python -m model.server [serve] [--host H] [--port P] [--model-dir DIR]

SageMaker starts a container with the single argument `serve`; flags override the
settings read from the environment (see `model/server/settings.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from model.server.app import build_app
from model.server.invoke import STATE
from model.server.settings import ServerSettings

log = logging.getLogger("model.server")

# Requests in flight get this long to finish after SIGTERM.
SHUTDOWN_SECONDS = 10.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m model.server", description="byom's SageMaker-compatible model server"
    )
    parser.add_argument("command", nargs="?", choices=["serve"], help="accepted for SageMaker")
    parser.add_argument("--host", help="address to bind (BYOM_MODEL_SERVER_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (SAGEMAKER_BIND_TO_PORT)")
    parser.add_argument("--model-dir", type=Path, help="model directory (SM_MODEL_DIR)")
    return parser.parse_args(argv)


async def serve(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        state = app[STATE]
        address = ", ".join(f"http://{host}:{port}" for host, port, *_ in runner.addresses)
        if state.model is not None:
            log.info(
                "model server on %s: %s, %d prediction threads",
                address,
                state.model.description,
                settings.threads,
            )
        elif settings.multi_model:
            log.info("multi-model server on %s: models are loaded through /models", address)
        else:
            log.error(
                "model server on %s WITHOUT a model, /ping answers 500: %s",
                address,
                state.load_error,
            )
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("model_dir", args.model_dir))
        if value is not None
    }
    try:
        settings = ServerSettings(**overrides)
    except ValidationError as exc:
        print(f"invalid model server settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc.strerror or exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
