"""The SageMaker Python SDK for tests, in its own virtual environment.

The SDK's pins clash with byom's (protobuf<7, attrs<26), so it cannot share `.venv`.
The first test that needs it builds `.venv-sagemaker` (gitignored) from
`tests/integration/sagemaker-sdk.lock` as `pip install --no-deps` would (the pins `.venv`
holds at the same version linked from it: venv_links.py) and reuses it while the lock
is unchanged; a machine that cannot reach a package index skips
those tests, saying why. A test hands the SDK a script to run there, with the
stack's endpoint as `AWS_ENDPOINT_URL` so every client the SDK makes is local.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from infra.local.stack import REPO
from tests.integration import venv_links

SDK_VENV = REPO / ".venv-sagemaker"
SDK_LOCK = Path(__file__).with_name("sagemaker-sdk.lock")
_MARKER = SDK_VENV / ".installed"

# The SDK sends usage telemetry to AWS unless its defaults config opts out.
_SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def _lock_digest() -> str:
    return hashlib.sha256(SDK_LOCK.read_bytes()).hexdigest()


def sdk_python() -> Path:
    """The SDK venv's python, built from the lock when missing or stale."""
    python = SDK_VENV / "bin" / "python"
    if python.exists() and _MARKER.exists() and _MARKER.read_text() == _lock_digest():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(SDK_VENV)], check=True)

    def pip(arguments: Sequence[str]) -> None:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *arguments],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0:
            pytest.skip(f"cannot install the SageMaker Python SDK: {install.stderr[-800:]}")

    # The pins .venv holds at the same version are linked from it, pip fetches the rest.
    venv_links.install(SDK_VENV, ["--no-deps", "-r", str(SDK_LOCK)], pip)
    _MARKER.write_text(_lock_digest())
    return python


def run_with_sdk(
    script: str, args: dict[str, Any], endpoint: str, work: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (given ``args`` as JSON in argv[1]) with the SDK, against ``endpoint``."""
    python = sdk_python()
    (work / "sdk-script.py").write_text(script)
    (work / "sdk-config.yaml").write_text(_SDK_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": str(args.get("region", "us-east-1")),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL": endpoint,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(work / "sdk-config.yaml"),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    done = subprocess.run(
        [str(python), str(work / "sdk-script.py"), json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert done.returncode == 0, f"the SDK script failed:\n{done.stderr[-4000:]}"
    return done
