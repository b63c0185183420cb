"""The model server on this machine answers this machine's clients, not web pages.

Bound to a loopback address (as the local stack runs it), it refuses requests
whose Host is not its own loopback address and port (DNS rebinding) and
cross-origin browser requests. Its JSON control routes (`/_byom/faults`,
`POST /models`) read only `application/json`, so a cross-site `text/plain` form
cannot reach them even where the loopback rule is off (on AWS, where SageMaker
calls the container with its own Host).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.server.settings import ServerSettings
from tests.integration.test_model_server import Server, http

pytestmark = pytest.mark.integration

FAULTS = json.dumps({"status": 503, "count": 1}).encode()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A multi-model server on 127.0.0.1 with the defaults: the loopback rule is on."""
    logs = tmp_path_factory.mktemp("guarded")
    server = Server(logs / "server.log", logs / "no-model", env={"BYOM_MULTI_MODEL": "true"})
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same server with the loopback rule turned off, as on AWS."""
    logs = tmp_path_factory.mktemp("open")
    server = Server(
        logs / "server.log",
        logs / "no-model",
        env={"BYOM_MULTI_MODEL": "true", "BYOM_LOOPBACK_ONLY": "false", "BYOM_FAULT_API": "true"},
    )
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_own_clients_are_served(guarded: Server) -> None:
    for host in (f"127.0.0.1:{guarded.port}", f"localhost:{guarded.port}"):
        assert http(f"{guarded.url}/ping", headers={"Host": host})[0] == 200
    same_origin = {"Origin": guarded.url, "Sec-Fetch-Site": "same-origin"}
    assert http(f"{guarded.url}/ping", headers=same_origin)[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "rebound.example:{port}"},  # DNS rebinding: a page's own name, our address
        {"Host": "127.0.0.1:1"},  # another port
        {"Origin": "https://page.example"},
        {"Origin": "null"},  # a sandboxed frame or a file: page
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
@pytest.mark.parametrize("path", ["/ping", "/invocations", "/models", "/_byom/faults"])
def test_pages_are_refused(guarded: Server, headers: dict[str, str], path: str) -> None:
    sent = {name: value.format(port=guarded.port) for name, value in headers.items()}
    body = None if path == "/ping" else FAULTS
    status, _, answer = http(f"{guarded.url}{path}", body, sent | {"Content-Type": "text/plain"})
    assert status == 403, (status, answer)
    # and nothing reached the routes: no fault was set
    assert json.loads(http(f"{guarded.url}/_byom/faults")[2]) == {"status": None, "count": 0}


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/x-www-form-urlencoded"])
def test_json_routes_read_only_json(open_server: Server, content_type: str) -> None:
    headers = {"Content-Type": content_type}  # "" as a Blob body with no type sends
    status, _, answer = http(f"{open_server.url}/_byom/faults", FAULTS, headers)
    assert status == 415, answer
    assert json.loads(http(f"{open_server.url}/_byom/faults")[2]) == {"status": None, "count": 0}
    document = json.dumps({"model_name": "m", "url": "/nowhere"}).encode()
    status, _, answer = http(f"{open_server.url}/models", document, headers)
    assert status == 415, answer


def test_json_routes_still_take_json(open_server: Server) -> None:
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    assert http(f"{open_server.url}/_byom/faults", FAULTS, json_type)[0] == 200
    cleared = json.dumps({"status": 503, "count": 0}).encode()
    assert http(f"{open_server.url}/_byom/faults", cleared, json_type)[0] == 200
    document = json.dumps({"model_name": "m", "url": "/nowhere"}).encode()
    assert http(f"{open_server.url}/models", document, json_type)[0] == 400  # read, then refused


def test_rule_is_off_where_the_server_is_reachable_from_elsewhere(open_server: Server) -> None:
    # SageMaker calls a container with a Host of its own choosing.
    status = http(f"{open_server.url}/ping", headers={"Host": "model.sagemaker.internal"})[0]
    assert status == 200


@pytest.mark.parametrize(
    ("host", "flag", "on"),
    [
        ("127.0.0.1", None, True),
        ("localhost", None, True),
        ("::1", None, True),
        ("0.0.0.0", None, False),  # the container: SageMaker reaches it from outside
        ("0.0.0.0", "true", True),
        ("127.0.0.1", "false", False),
    ],
)
def test_rule_follows_the_bind_address(
    monkeypatch: pytest.MonkeyPatch, host: str, flag: str | None, on: bool, tmp_path: Path
) -> None:
    monkeypatch.setenv("BYOM_MODEL_SERVER_HOST", host)
    if flag is None:
        monkeypatch.delenv("BYOM_LOOPBACK_ONLY", raising=False)
    else:
        monkeypatch.setenv("BYOM_LOOPBACK_ONLY", flag)
    assert ServerSettings(model_dir=tmp_path).loopback_only_enabled is on
