from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.stack import REPO

MODEL_DIR = REPO / "model" / "artifacts"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model `make model` trained; trained here when the suite runs on its own."""
    if (MODEL_DIR / "xgboost-model.json").exists():
        return MODEL_DIR
    out = tmp_path_factory.mktemp("model")
    subprocess.run([sys.executable, "-m", "model.train", "--out", str(out)], check=True, cwd=REPO)
    return out


def _moto_server(log_dir: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "infra.local.moto_server", "-H", "127.0.0.1", "-p", str(port)]
    service = Service(
        name="moto",
        command=command,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        log_path=log_dir / "moto.log",
        cwd=REPO,
    )
    service.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{endpoint}/moto-api/"), timeout=30, what="moto server")
        yield endpoint
    finally:
        service.stop()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare moto server for tests that need AWS APIs but not the whole stack."""
    yield from _moto_server(tmp_path_factory.mktemp("moto"))


@pytest.fixture(scope="module")
def own_moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server for one module: for tests whose S3 events must flow, since a
    CloudFormation deploy on a shared server can leave EventBridge rules that make
    moto answer 500 to every later matching event (LOCAL-AWS.md)."""
    yield from _moto_server(tmp_path_factory.mktemp("own-moto"))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start real model servers on a package; each is stopped cleanly at the end."""
    from tests.integration.test_model_server import Server

    servers: list[Server] = []

    def start(package: Path, env: dict[str, str] | None = None) -> Server:
        server = Server(tmp_path / f"server-{len(servers)}.log", package, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.stop() == 0, server.log()
