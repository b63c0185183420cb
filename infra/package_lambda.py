"""Build what the CloudFormation stack deploys from: the Lambda bundle and the image
sources for CodeBuild (the model package is packed by ``python -m model.package pack``).

Every archive is byte-for-byte reproducible (sorted entries, fixed timestamps and
modes), so its content hash names it in the bootstrap bucket: an unchanged tree
gives an unchanged key, and CloudFormation leaves the functions and images alone.

    python -m infra.package_lambda lambda --out build/lambda.zip
    python -m infra.package_lambda source --out build/source.zip
    python -m infra.package_lambda hash build/model.tar.gz

Each command prints the archive's (or, for hash, the file's) content hash.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"

# What the Lambda handlers import: shared/ and the services that run as
# functions, SageMaker's API among them (the worker runs in its image, not in Lambda).
LAMBDA_SOURCES = (
    "shared",
    "services/__init__.py",
    "services/ingest",
    "services/scheduler",
    "services/status",
    "services/transform",
)
# Their direct dependencies; requirements.lock pins these and everything they pull in.
LAMBDA_REQUIREMENTS = (
    "aiobotocore",
    "aws-lambda-powertools",
    "boto3",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-propagator-aws-xray",
    "opentelemetry-sdk",
    "opentelemetry-sdk-extension-aws",
    "pydantic",
    "pydantic-settings",
)
LAMBDA_PYTHON = "3.12"  # the functions' runtime, python3.12 in the template
LAMBDA_PLATFORM = "manylinux2014_x86_64"

# What CodeBuild needs to build both images (infra/buildspec.yml).
SOURCE_BUNDLE = (
    ".dockerignore",
    "infra/buildspec.yml",
    "model",
    "pyproject.toml",
    "requirements.lock",
    "services",
    "shared",
)
# Trained artifacts reach SageMaker as model.tar.gz, never inside an image.
EXCLUDED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
EXCLUDED_PATHS = frozenset({"model/artifacts"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def collect(roots: Iterable[str], base: Path = REPO) -> list[Path]:
    """Files under ``roots`` (relative to ``base``), sorted, without caches or artifacts."""
    files: set[Path] = set()
    for root in roots:
        path = base / root
        if path.is_file():
            files.add(path)
            continue
        if not path.is_dir():
            raise FileNotFoundError(f"{root} is missing from {base}")
        for candidate in path.rglob("*"):
            relative = candidate.relative_to(base)
            if not candidate.is_file() or candidate.suffix in EXCLUDED_SUFFIXES:
                continue
            if EXCLUDED_DIRS.intersection(relative.parts):
                continue
            if any(relative.as_posix().startswith(f"{p}/") for p in EXCLUDED_PATHS):
                continue
            files.add(candidate)
    return sorted(files)


def write_zip(out: Path, entries: Iterable[tuple[Path, str]]) -> None:
    """A zip whose bytes depend only on the entries' names and contents."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as archive:
        for source, name in sorted(entries, key=lambda entry: entry[1]):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = source.stat().st_mode & 0o111
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            archive.writestr(info, source.read_bytes(), compresslevel=9)


def install_dependencies(target: Path, python_version: str = LAMBDA_PYTHON) -> None:
    """Lambda's dependencies as Linux wheels for its runtime, pinned by the lock."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
            "--target", str(target),
            "--platform", LAMBDA_PLATFORM,
            "--implementation", "cp",
            "--python-version", python_version,
            "--only-binary=:all:",
            "--constraint", str(LOCK),
            *LAMBDA_REQUIREMENTS,
        ],
        check=True,
    )  # fmt: skip


def dependencies_key(python_version: str = LAMBDA_PYTHON) -> str:
    """What the installed dependencies depend on: the lock, the list, the runtime."""
    digest = hashlib.sha256(LOCK.read_bytes())
    digest.update("\n".join([*LAMBDA_REQUIREMENTS, python_version, LAMBDA_PLATFORM]).encode())
    return digest.hexdigest()[:20]


def _install_into(target: Path, python_version: str) -> None:
    install_dependencies(target, python_version)
    # pip's launcher scripts are of no use inside Lambda.
    shutil.rmtree(target / "bin", ignore_errors=True)


def _dependencies(scratch: Path, python_version: str, cache: Path | None) -> Path:
    """Where the installed dependencies are: fresh in ``scratch``, or cached."""
    if cache is None:
        _install_into(scratch, python_version)
        return scratch
    target = cache / f"lambda-{dependencies_key(python_version)}"
    if not target.is_dir():
        building = target.with_name(f"{target.name}.partial")
        shutil.rmtree(building, ignore_errors=True)
        _install_into(building, python_version)
        building.rename(target)
    return target


def build_lambda(
    out: Path,
    *,
    with_dependencies: bool = True,
    base: Path = REPO,
    python_version: str = LAMBDA_PYTHON,
    dependencies_cache: Path | None = None,
) -> str:
    """The bundle every byom function runs from; returns its content hash.

    ``dependencies_cache`` (tests): keep the installed dependencies there, under
    :func:`dependencies_key`, and install them only when the key is new.
    """
    entries = [(path, path.relative_to(base).as_posix()) for path in collect(LAMBDA_SOURCES, base)]
    with tempfile.TemporaryDirectory(prefix="byom-lambda-") as scratch:
        if with_dependencies:
            target = _dependencies(Path(scratch), python_version, dependencies_cache)
            entries += [
                (path, path.relative_to(target).as_posix())
                for path in collect([p.name for p in target.iterdir()], target)
            ]
        write_zip(out, entries)
    return content_hash(out)


# Where the model server's image build finds the deployed package's requirements.
MODEL_REQUIREMENTS_ENTRY = "model/server/model-requirements.txt"


def build_source(out: Path, base: Path = REPO, model_requirements: Path | None = None) -> str:
    """The image sources CodeBuild builds from; returns its content hash.

    `model_requirements` (the deployed package's code/requirements.txt) goes in
    too, since the endpoint cannot reach an index at run time."""
    entries = [(path, path.relative_to(base).as_posix()) for path in collect(SOURCE_BUNDLE, base)]
    if model_requirements is not None:
        entries.append((model_requirements, MODEL_REQUIREMENTS_ENTRY))
    write_zip(out, entries)
    return content_hash(out)


def content_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lambda_ = commands.add_parser("lambda", help="the Lambda bundle")
    lambda_.add_argument("--out", type=Path, required=True)
    lambda_.add_argument(
        "--no-dependencies",
        action="store_true",
        help="byom's own code only (for tests; the functions need the dependencies)",
    )
    source = commands.add_parser("source", help="the image sources for CodeBuild")
    source.add_argument("--out", type=Path, required=True)
    source.add_argument(
        "--model-requirements",
        type=Path,
        help="the deployed package's code/requirements.txt, installed at image build",
    )
    hashed = commands.add_parser("hash", help="a file's content hash, as the archives are named")
    hashed.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    if args.command == "hash":
        digest = content_hash(args.path)
    elif args.command == "lambda":
        digest = build_lambda(args.out, with_dependencies=not args.no_dependencies)
    else:
        digest = build_source(args.out, model_requirements=args.model_requirements)
    print(digest)


if __name__ == "__main__":
    main()
