"""pyproject declares what each deployable imports, pinned as requirements.lock pins it.

For each deployable (an extra in pyproject: the Lambda functions, the worker image, the
model server, the byom command, the local stack) the test follows byom's own imports
from its entry modules, collects every third-party module they import at run time
(not those under ``if TYPE_CHECKING:``), and checks that installing ``byom[extra]``
brings each one: the extra's requirements, plus what those require in turn, as the
installed metadata says. So ``pip install '.[cli]'`` gives a ``byom`` that starts.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = frozenset({"bench", "cli", "infra", "model", "services", "shared", "tests"})

# Where each deployable starts: its handlers, its main module, its command.
ENTRY_MODULES = {
    "lambda": (
        "services.ingest.handler",
        "services.scheduler.handler",
        "services.status.handler",
        "services.status.dead_letter_handler",
        "services.status.reaper_handler",
    ),
    "worker": ("services.inference_worker.main",),
    "server": ("model.server.__main__",),
    "cli": ("cli.main",),
    # make up / byom up: the local AWS and its dashboard (each a process of its own),
    # and the training and packing of the sample model.
    "local": (
        *(f"infra.local.{path.stem}" for path in sorted((REPO / "infra/local").glob("*.py"))),
        "model.train",
        "model.package",
    ),
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _project_requirements(extra: str | None) -> list[Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    lines = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[_normalize(Requirement(name).name)] = version.strip()
    return pins


def _module_file(module: str) -> Path | None:
    path = REPO.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[str]:
    """Every module an import statement names, skipping ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(child)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            # ``from pkg import module`` imports pkg.module when that is a module.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        yield from _runtime_imports(node)


def _third_party_imports(entries: tuple[str, ...]) -> dict[str, str]:
    """Third-party module as imported -> a byom module that imports it."""
    seen: set[str] = set()
    pending = list(entries)
    found: dict[str, str] = {}
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, f"{module} is not a module of byom"
        parents = module.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        pending.extend(".".join(parents[:depth]) for depth in range(1, len(parents)))
        for name in _runtime_imports(ast.parse(path.read_text(), str(path))):
            top = name.split(".")[0]
            if top in FIRST_PARTY:
                if _module_file(name) is not None:
                    pending.append(name)
            elif top != "__future__" and top not in sys.stdlib_module_names:
                found.setdefault(name, module)
    return found


def _installed_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions installing ``requirements`` brings, from the installed metadata."""
    closure: set[str] = set()
    pending = [(requirement, frozenset[str]()) for requirement in requirements]
    while pending:
        requirement, _ = pending.pop()
        name = _normalize(requirement.name)
        if name == "byom":  # an extra naming others: byom[cli,worker]
            for extra in requirement.extras:
                pending.extend((r, frozenset()) for r in _project_requirements(extra))
            continue
        key = name + "[" + ",".join(sorted(requirement.extras)) + "]"
        if key in closure:
            continue
        closure.add(key)
        closure.add(name)
        for line in metadata.requires(requirement.name) or ():
            child = Requirement(line)
            environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                pending.append((child, frozenset()))
    return {name for name in closure if "[" not in name}


@cache
def _top_level_owners() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


@cache
def _paths_of(distribution: str) -> frozenset[str]:
    """Each module file and each package directory the distribution installs."""
    paths: set[str] = set()
    for file in metadata.files(distribution) or ():
        parts = file.parts
        paths.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        if file.suffix == ".py":
            paths.add(file.with_suffix("").as_posix())
    return frozenset(paths)


@cache
def _distributions_of(module: str) -> frozenset[str]:
    """The distributions holding ``module``: for a namespace package such as
    opentelemetry, the ones holding the deepest part of its path."""
    parts = module.split(".")
    candidates = _top_level_owners().get(parts[0], [])
    for depth in range(len(parts), 0, -1):
        stem = "/".join(parts[:depth])
        owners = frozenset(_normalize(name) for name in candidates if stem in _paths_of(name))
        if owners:
            return owners
    return frozenset(_normalize(name) for name in candidates)


@pytest.mark.parametrize("extra", sorted(ENTRY_MODULES))
def test_each_deployable_s_imports_are_installed_by_its_extra(extra: str) -> None:
    installed = _installed_closure(_project_requirements(None) + _project_requirements(extra))
    missing = {
        f"{imported} (imported by {module})"
        for imported, module in _third_party_imports(ENTRY_MODULES[extra]).items()
        if not _distributions_of(imported) & installed
    }
    assert not missing, f"pip install 'byom[{extra}]' lacks: {sorted(missing)}"


def test_every_declared_dependency_is_pinned_to_the_lock() -> None:
    pins = _lock()
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    wrong = []
    for group, lines in groups.items():
        for requirement in map(Requirement, lines):
            name = _normalize(requirement.name)
            if name == "byom":
                continue
            specifiers = list(requirement.specifier)
            pinned = len(specifiers) == 1 and specifiers[0].operator == "=="
            if not pinned or pins.get(name) != specifiers[0].version:
                wrong.append(f"{group}: {requirement} (lock: {pins.get(name)})")
    assert not wrong, wrong


def test_every_deployable_has_an_extra() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert set(ENTRY_MODULES) | {"dev"} <= set(project["optional-dependencies"])


def test_the_closure_sees_a_deferred_import_and_skips_type_only_ones() -> None:
    # The flavors import their framework inside the loader; the worker's S3 types are
    # for mypy only. The scan must see the first and not the second.
    assert "lightgbm" in _third_party_imports(("model.flavors.lightgbm_flavor",))
    worker = {name.split(".")[0] for name in _third_party_imports(ENTRY_MODULES["worker"])}
    assert "types_aiobotocore_s3" not in worker
    assert _distributions_of("opentelemetry.sdk.trace") == {"opentelemetry-sdk"}
