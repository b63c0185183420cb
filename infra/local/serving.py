"""One aiohttp app served on 127.0.0.1 until SIGTERM or SIGINT: the local stack's small
servers (the trace receiver, the job dashboard) run this way."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web


async def serve_until_stopped(
    app: web.Application, host: str, port: int, started: str, log: logging.Logger
) -> None:
    """Serve `app` on host:port, log `started`, and return once a stop signal came."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info(started)
        await stop.wait()
    finally:
        await runner.cleanup()
