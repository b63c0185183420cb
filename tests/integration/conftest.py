from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare moto server for tests that need AWS APIs but not the whole stack."""
    port = free_port()
    service = Service(
        name="moto",
        command=[
            sys.executable,
            "-m",
            "infra.local.moto_server",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path_factory.mktemp("moto") / "moto.log",
        cwd=REPO,
    )
    service.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{endpoint}/moto-api/"), timeout=30, what="moto server")
        yield endpoint
    finally:
        service.stop()
