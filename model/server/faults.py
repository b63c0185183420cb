"""Fault injection, for tests of callers' retry logic.

The next `count` invocations answer `status` (429, 500, 503...) instead of
predicting: set at start-up (`BYOM_FAULT_STATUS`, `BYOM_FAULT_COUNT`) or at run
time through `GET|POST /_byom/faults` (`{"status": 429, "count": 2}`). The route
exists only when the server listens on a loopback address (or
`BYOM_FAULT_API=true`), so a server others can reach cannot be told to fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from model.server.problems import control_document, control_refusal

log = logging.getLogger(__name__)

EXPECTED = '{"status": 429, "count": 2}'


@dataclass
class Faults:
    """The failures still to come."""

    status: int | None = None
    count: int = 0

    def take(self) -> int | None:
        """The status the next invocation must answer, or None to predict."""
        if self.status is None or self.count <= 0:
            return None
        self.count -= 1
        return self.status

    def set(self, status: int, count: int) -> None:
        self.status, self.count = (status, count) if count else (None, 0)


FAULTS = web.AppKey("faults", Faults)


async def set_faults(request: web.Request) -> web.Response:
    """Tests only: make the next `count` invocations answer `status`."""
    faults = request.app[FAULTS]
    if request.method == "POST":
        document = await control_document(request, EXPECTED)
        if isinstance(document, web.Response):
            return document
        try:
            status, count = int(document["status"]), int(document["count"])
        except (ValueError, KeyError, TypeError) as exc:
            return control_refusal(EXPECTED, str(exc))
        if count < 0 or (count and not 400 <= status <= 599):
            return web.json_response(
                {"error": "status must be within 400-599 and count at least 0"}, status=400
            )
        faults.set(status, count)
        log.info("faults set: the next %d invocations answer %s", count, status)
    return web.json_response({"status": faults.status, "count": faults.count})


def add_routes(app: web.Application, faults: Faults) -> None:
    app[FAULTS] = faults
    app.router.add_get("/_byom/faults", set_faults)
    app.router.add_post("/_byom/faults", set_faults)
