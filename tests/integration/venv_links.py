"""Fill a fresh venv with distributions the test interpreter already has installed.

Installing a wheel is unpacking it and compiling its modules; the same version of the
same distribution, installed in ``.venv`` from ``requirements.lock``, holds exactly those
files (pip lists each, its bytecode included, in the distribution's ``RECORD``).
Hard-linking them into a new venv gives it what ``pip install`` would, in a second
rather than the minute pip takes to fetch, unpack and compile them again on a clean
clone (the deployables' venvs, the SageMaker SDK's).

Only what provably matches is linked. A ``--no-deps`` install of exact pins links each
pin this interpreter has at that version and leaves the others to pip. An install with
dependencies links only when every distribution of its closure is pinned by the
install's constraints to the version installed here; anything else (a pip option not
understood here, a requirement not pinned, a file missing) goes to pip whole.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

Pip = Callable[[Sequence[str]], None]
# Options that change nothing about which files an install of wheels leaves.
_HARMLESS = ("--quiet", "-q", "--disable-pip-version-check", "--no-cache-dir")
_ONLY_BINARY = "--only-binary"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_here() -> dict[str, metadata.Distribution]:
    """This interpreter's own distributions (its site-packages), by canonical name."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=sorted(paths)):
        found.setdefault(canonical(dist.metadata["Name"]), dist)
    return found


def _requirement_lines(path: Path) -> list[str] | None:
    """A requirements file's requirements; None if it holds anything but plain lines."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-") or line.endswith("\\"):
            return None
        lines.append(line)
    return lines


def _parse(arguments: Sequence[str]) -> tuple[bool, list[Requirement], list[Requirement]] | None:
    """(no-deps, requirements, constraints) of pip install arguments; None if unsupported."""
    no_deps = False
    wanted: list[Requirement] = []
    constraints: list[Requirement] = []
    words = iter(arguments)
    try:
        for word in words:
            if word in _HARMLESS or word.startswith(f"{_ONLY_BINARY}="):
                continue
            if word == _ONLY_BINARY:
                next(words)  # wheels only: what is installed here came from wheels too
            elif word == "--no-deps":
                no_deps = True
            elif word in ("-c", "--constraint", "-r", "--requirement"):
                lines = _requirement_lines(Path(next(words)))
                if lines is None:
                    return None
                into = constraints if word in ("-c", "--constraint") else wanted
                into += [Requirement(line) for line in lines]
            elif word.startswith("-"):
                return None
            else:
                wanted.append(Requirement(word))
    except (StopIteration, InvalidRequirement, OSError):
        return None
    return no_deps, wanted, constraints


def _only_binary(arguments: Sequence[str]) -> list[str]:
    """The ``--only-binary`` options among ``arguments``, in either spelling."""
    kept: list[str] = []
    for index, word in enumerate(arguments):
        if word.startswith(f"{_ONLY_BINARY}="):
            kept.append(word)
        elif word == _ONLY_BINARY and index + 1 < len(arguments):
            kept += [word, arguments[index + 1]]
    return kept


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def _closure(
    wanted: list[Requirement],
    constraints: list[Requirement],
    here: dict[str, metadata.Distribution],
) -> list[metadata.Distribution] | None:
    """Every distribution pip would install for ``wanted`` under ``constraints``, when
    the constraints pin each to the version installed here; else None."""
    pins = {canonical(c.name): c.specifier for c in constraints}
    chosen: dict[str, metadata.Distribution] = {}
    expanded: set[tuple[str, frozenset[str]]] = set()
    pending = [(requirement, frozenset[str]()) for requirement in wanted]
    while pending:
        requirement, requester_extras = pending.pop()
        if not _applies(requirement, requester_extras):
            continue
        name = canonical(requirement.name)
        dist = here.get(name)
        if dist is None or name not in pins:
            return None
        version = dist.version
        if not (
            requirement.specifier.contains(version, prereleases=True)
            and pins[name].contains(version, prereleases=True)
        ):
            return None
        chosen[name] = dist
        key = (name, frozenset(requirement.extras))
        if key in expanded:
            continue
        expanded.add(key)
        pending += [(Requirement(line), key[1]) for line in dist.requires or []]
    return list(chosen.values())


def _exact(requirement: Requirement, here: dict[str, metadata.Distribution]) -> bool:
    """Whether ``requirement`` is ``name==version`` for a version installed here."""
    dist = here.get(canonical(requirement.name))
    specifiers = list(requirement.specifier)
    return (
        dist is not None
        and not requirement.extras
        and requirement.marker is None
        and len(specifiers) == 1
        and specifiers[0].operator == "=="
        and specifiers[0].contains(dist.version, prereleases=True)
    )


def _files(dist: metadata.Distribution) -> list[Path] | None:
    """The distribution's installed files (RECORD); None if any besides bytecode is gone
    or lies outside the venv."""
    found = []
    site = sysconfig.get_paths()["purelib"]
    for entry in dist.files or []:
        path = Path(str(dist.locate_file(entry)))
        # Deeper than lib/pythonX.Y/site-packages goes: outside any venv, pip's to place.
        if os.path.relpath(path, site).startswith(f"..{os.sep}" * 4):
            return None
        if path.is_file():
            found.append(path)
        elif path.suffix != ".pyc":
            return None
    return found if dist.files else None


def _site_packages(venv: Path) -> Path:
    paths = sysconfig.get_paths(scheme="venv", vars={"base": str(venv), "platbase": str(venv)})
    return Path(paths["purelib"])


def _link_one(source: Path, target: Path, python: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.parent.name == "bin" and source.read_bytes().startswith(b"#!"):
        # A launcher script: pip writes the installing venv's python into its first line.
        first, _, rest = source.read_bytes().partition(b"\n")
        if b"python" in first:
            target.write_bytes(b"#!" + bytes(python) + b"\n" + rest)
            shutil.copymode(source, target)
            return
    try:
        os.link(source, target)
    except OSError:  # another file system: a copy does as well
        shutil.copy2(source, target)


def link(dists: Iterable[metadata.Distribution], venv: Path, requested: set[str]) -> None:
    """Hard-link each distribution's files into ``venv`` where pip would put them; pip
    marks the ones named on its command line (``requested``) with a REQUESTED file."""
    source_site = Path(sysconfig.get_paths()["purelib"])
    target_site = _site_packages(venv)
    python = venv / "bin" / "python"
    for dist in dists:
        for source in _files(dist) or []:
            if source.name == "REQUESTED" and canonical(dist.metadata["Name"]) not in requested:
                continue
            if source.name == "direct_url.json":  # pip from an index writes none
                continue
            relative = os.path.relpath(source, source_site)
            target = Path(os.path.normpath(target_site / relative))
            if not target.is_relative_to(venv):
                raise ValueError(f"{source} would land outside {venv}")
            _link_one(source, target, python)


def install(venv: Path, arguments: Sequence[str], pip: Pip) -> None:
    """``pip install arguments`` into ``venv``: linked from here what matches, ``pip`` the rest."""
    parsed = _parse(arguments)
    if parsed is None or sys.platform != "linux":
        pip(arguments)
        return
    no_deps, wanted, constraints = parsed
    here = installed_here()
    if no_deps:
        linkable = [r for r in wanted if _exact(r, here)]
        dists = [here[canonical(r.name)] for r in linkable]
        if any(_files(dist) is None for dist in dists):
            pip(arguments)
            return
        link(dists, venv, {canonical(r.name) for r in linkable})
        rest = [str(r) for r in wanted if r not in linkable]
        if rest:
            pip(["--no-deps", *_only_binary(arguments), *rest])
        return
    closure = _closure(wanted, constraints, here)
    if closure is None or any(_files(dist) is None for dist in closure):
        pip(arguments)
        return
    link(closure, venv, {canonical(r.name) for r in wanted})
