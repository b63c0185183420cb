"""``make clean`` removes what the targets and the tests build, wherever they name it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from infra.local import deployables
from infra.local.stack import REPO
from tests.integration import sagemaker_sdk


def removed_by_clean(makefile: Path) -> set[Path]:
    """The paths ``make clean`` passes to ``rm`` (``make -n``: nothing is removed)."""
    shown = subprocess.run(
        ["make", "--no-print-directory", "-n", "-f", str(makefile), "clean"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    words = shlex.split(shown.replace("\\\n", " "))
    return {(REPO / word).resolve() for word in words if not word.startswith("-") and word != "rm"}


def built_folders() -> dict[str, Path]:
    site_dir = yaml.safe_load((REPO / "mkdocs.yml").read_text())["site_dir"]
    return {
        "the deployables (tests/integration/test_deployables.py)": deployables.CACHE,
        "the SageMaker SDK's venv (tests/integration)": sagemaker_sdk.SDK_VENV,
        "the docs site (make docs)": REPO / site_dir,
        "the venv": REPO / ".venv",
    }


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_clean_removes_every_folder_the_targets_and_tests_build() -> None:
    removed = removed_by_clean(REPO / "Makefile")
    left = {what: path for what, path in built_folders().items() if path.resolve() not in removed}
    assert not left, left
