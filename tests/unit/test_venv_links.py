"""Venvs filled by links from .venv hold what pip would install, and pip gets the rest."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.integration import venv_links

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def fresh_venv(path: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def no_pip(arguments: Sequence[str]) -> None:
    raise AssertionError(f"pip was asked for {list(arguments)}")


def test_the_closure_under_the_lock_is_what_pip_resolves() -> None:
    """boto3's dependencies as its metadata and the lock's pins give them."""
    parsed = venv_links._parse(["--only-binary=:all:", "--constraint", str(LOCK), "boto3"])
    assert parsed is not None
    no_deps, wanted, constraints = parsed
    closure = venv_links._closure(wanted, constraints, venv_links.installed_here())
    assert closure is not None and not no_deps
    names = {venv_links.canonical(dist.metadata["Name"]) for dist in closure}
    assert names == {
        "boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"
    }  # fmt: skip


def test_an_unpinned_or_unknown_requirement_goes_to_pip_whole(tmp_path: Path) -> None:
    asked: list[list[str]] = []
    venv = fresh_venv(tmp_path / "venv")
    for arguments in (
        ["boto3"],  # no constraint pins it: pip might choose another version
        ["--constraint", str(LOCK), "no-such-distribution-here"],
        ["--index-url", "https://example.invalid/simple", "six==1.17.0"],
    ):
        venv_links.install(venv, arguments, lambda words: asked.append(list(words)))
    assert asked == [
        ["boto3"],
        ["--constraint", str(LOCK), "no-such-distribution-here"],
        ["--index-url", "https://example.invalid/simple", "six==1.17.0"],
    ]
    assert not list((venv / "lib").glob("python*/site-packages/*"))


def test_exact_pins_are_linked_and_the_rest_left_to_pip(tmp_path: Path) -> None:
    venv = fresh_venv(tmp_path / "venv")
    asked: list[list[str]] = []
    here = venv_links.installed_here()
    six, jmespath = here["six"].version, here["jmespath"].version
    venv_links.install(
        venv,
        ["--no-deps", f"six=={six}", f"jmespath=={jmespath}", "jmespath-not-here==1.0"],
        lambda words: asked.append(list(words)),
    )
    assert asked == [["--no-deps", "jmespath-not-here==1.0"]]
    # The venv's own python, isolated, imports them from its site-packages.
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c",
         "import six, jmespath; print(six.__file__); print(jmespath.__file__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert all(path.startswith(str(venv)) for path in shown), shown
    # The console script runs the venv's python, not .venv's.
    script = (venv / "bin" / "jp.py").read_text().splitlines()[0]
    assert script == f"#!{venv / 'bin' / 'python'}", script


def test_a_distribution_is_linked_with_every_file_pip_recorded(tmp_path: Path) -> None:
    venv = fresh_venv(tmp_path / "venv")
    dist = venv_links.installed_here()["six"]
    venv_links.install(venv, ["--no-deps", f"six=={dist.version}"], no_pip)
    site = next((venv / "lib").glob("python*/site-packages"))
    linked = {str(path.relative_to(site)) for path in site.rglob("*") if path.is_file()}
    files = [(str(entry), Path(str(dist.locate_file(entry)))) for entry in dist.files or []]
    recorded = {entry for entry, path in files if path.is_file()}
    recorded -= {f"six-{dist.version}.dist-info/direct_url.json"}
    assert linked == recorded


@pytest.mark.parametrize("word", ["-e", "--editable", "--pre", "--upgrade"])
def test_options_not_understood_here_are_pips(word: str) -> None:
    assert venv_links._parse([word, "six"]) is None
