"""The infrastructure linters' venv (.venv-iac, built by infra/iac_venv.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.test_template import REPO

IAC_BIN = REPO / ".venv-iac" / "bin"


def iac_tool(name: str) -> Path:
    path = IAC_BIN / name
    if not path.exists():
        pytest.skip(f"{path} is missing: build it with infra/iac_venv.sh")
    return path


def tool_env() -> dict[str, str]:
    return {
        "PATH": f"{IAC_BIN}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        # checkov would otherwise try to reach its vendor's API.
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    }
