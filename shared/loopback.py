"""The one rule every local server applies: only this machine, addressed by name and port.

byom's local servers listen on 127.0.0.1, where any web page the user has open can
send them requests. Two checks keep pages out:

- ``Host`` must be a loopback name with the server's own port, so a page whose own
  name resolves to 127.0.0.1 (DNS rebinding) is refused;
- a request carrying an ``Origin`` (every cross-origin fetch and form POST a browser
  sends) must come from that same loopback address and port, over http;
- a request carrying ``Sec-Fetch-Site`` (every request a current browser sends,
  including the no-cors GETs of ``<img>`` and ``<script>`` that carry no ``Origin``)
  must be ``same-origin`` or ``none`` (typed into the address bar). ``same-site`` is
  refused too: a page on another port of this machine is the same site, not this
  server.

Non-browser clients (boto3, the AWS CLI, aiohttp) send neither ``Origin`` nor
``Sec-Fetch-Site``, so they pass. On AWS the model server answers SageMaker's own
calls and does not apply this rule: the local stack turns it on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.typedefs import Middleware

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


# Sec-Fetch-Site values of a browser request that this server's own page (or the
# user, typing the address) made; "same-site" and "cross-site" come from other pages.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def allowed_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values a server on ``port`` answers."""
    return frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)


def allowed_origins(port: int) -> frozenset[str]:
    """The ``Origin`` values of this server's own pages: exactly what a browser sends."""
    return frozenset(f"http://{host}" for host in allowed_hosts(port))


def refusal(host: str | None, origin: str | None, fetch_site: str | None, port: int) -> str | None:
    """Why a request must be refused, or None when it comes from this machine's clients.

    Exact comparisons only, never a URL parser: any header value a client sends gets
    an answer (a reason or None), never an exception."""
    if (host or "").lower() not in allowed_hosts(port):
        return f"Host {host!r} is not served here"
    if fetch_site is not None and fetch_site.lower() not in OWN_FETCH_SITES:
        return f"{fetch_site!r} browser requests are refused"
    if origin is not None and origin.lower() not in allowed_origins(port):
        return f"Origin {origin!r} is refused"
    return None


Handler = Callable[["web.Request"], Awaitable["web.StreamResponse"]]


def aiohttp_guard(port: int) -> Middleware:
    """An aiohttp middleware answering 403 to any request :func:`refusal` refuses."""
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        reason = refusal(
            request.headers.get("Host"),  # not request.host: no fallback to this machine's name
            request.headers.get("Origin"),
            request.headers.get("Sec-Fetch-Site"),
            port,
        )
        if reason is not None:
            raise web.HTTPForbidden(text=reason)
        return await handler(request)

    return guard
