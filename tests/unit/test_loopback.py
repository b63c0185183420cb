"""The loopback rule every local server applies (shared/loopback.py), on header values
and through a real aiohttp server."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from infra.local.processes import free_port
from shared.loopback import aiohttp_guard, allowed_hosts, allowed_origins, refusal

PORT = 4566


@pytest.mark.parametrize(
    "host", ["127.0.0.1:4566", "localhost:4566", "[::1]:4566", "LOCALHOST:4566"]
)
def test_clients_without_browser_headers_pass(host: str) -> None:
    assert refusal(host, None, None, PORT) is None


@pytest.mark.parametrize(
    "host",
    [None, "", "127.0.0.1", "127.0.0.1:4567", "evil.example:4566", "127.0.0.1.nip.io:4566"],
)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert refusal(host, None, None, PORT) is not None


@pytest.mark.parametrize("origin", ["http://127.0.0.1:4566", "http://localhost:4566"])
def test_this_servers_own_pages_pass(origin: str) -> None:
    assert refusal("127.0.0.1:4566", origin, "same-origin", PORT) is None


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "",
        "http://evil.example",
        "http://127.0.0.1:8000",
        "http://localhost:4566.evil.example",
        "https://127.0.0.1:4566",  # another scheme is another origin
        "http://user@127.0.0.1:4566",
        "http://127.0.0.1:4566/path",
        "http://[::1",  # not a URL at all: refused, not an exception
        "http://[",
    ],
)
def test_foreign_origins_are_refused(origin: str) -> None:
    assert refusal("127.0.0.1:4566", origin, None, PORT) is not None


@pytest.mark.parametrize("site", ["cross-site", "same-site", "CROSS-SITE", "bogus"])
def test_requests_from_other_pages_are_refused_even_without_origin(site: str) -> None:
    # A no-cors GET (an <img>, a <script>) carries no Origin, only Sec-Fetch-Site; a
    # page on another port of this machine is "same-site" and still not this server.
    assert refusal("127.0.0.1:4566", None, site, PORT) is not None


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_own_pages_and_typed_addresses_pass(site: str) -> None:
    assert refusal("localhost:4566", None, site, PORT) is None


def _near(values: frozenset[str]) -> st.SearchStrategy[str]:
    """Exact allowed values, variations on them, and anything else."""
    exact = st.sampled_from(sorted(values))
    return st.one_of(
        exact,
        st.builds(str.upper, exact),
        st.builds(lambda value, extra: value + extra, exact, st.text(max_size=5)),
        st.builds(lambda extra, value: extra + value, st.text(max_size=5), exact),
        st.text(max_size=40),
    )


@given(
    host=st.none() | _near(allowed_hosts(PORT)),
    origin=st.none() | _near(allowed_origins(PORT) | {"null"}),
    site=st.none() | _near(frozenset({"same-origin", "none", "same-site", "cross-site"})),
)
def test_refusal_answers_any_header_values_and_passes_only_exact_loopback(
    host: str | None, origin: str | None, site: str | None
) -> None:
    reason = refusal(host, origin, site, PORT)
    allowed = (
        host is not None
        and host.lower() in allowed_hosts(PORT)
        and (origin is None or origin.lower() in allowed_origins(PORT))
        and (site is None or site.lower() in {"same-origin", "none"})
    )
    assert (reason is None) == allowed
    assert reason is None or isinstance(reason, str)


async def _statuses(requests: list[dict[str, str]]) -> list[int]:
    """Each request's status from a real aiohttp server behind the guard."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    port = free_port()
    app = web.Application(middlewares=[aiohttp_guard(port)])
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        statuses = []
        async with aiohttp.ClientSession() as session:
            for headers in requests:
                filled = {k: v.replace("PORT", str(port)) for k, v in headers.items()}
                async with session.get(f"http://127.0.0.1:{port}/", headers=filled) as response:
                    statuses.append(response.status)
                    assert "Access-Control-Allow-Origin" not in response.headers
        return statuses
    finally:
        await runner.cleanup()


def test_the_aiohttp_guard_answers_403_to_what_refusal_refuses() -> None:
    requests = [
        {},  # aiohttp's own client: Host 127.0.0.1:PORT, no browser headers
        {"Host": "localhost:PORT"},
        {"Origin": "http://127.0.0.1:PORT", "Sec-Fetch-Site": "same-origin"},
        {"Host": "evil.example:PORT"},
        {"Origin": "http://evil.example"},
        {"Origin": "http://[::1"},
        {"Sec-Fetch-Site": "cross-site"},
    ]
    assert asyncio.run(_statuses(requests)) == [200, 200, 200, 403, 403, 403, 403]
