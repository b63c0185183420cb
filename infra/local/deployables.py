"""What deploys, laid out on this machine: the Lambda bundle and the images' Python.

Tests run the local stack from these instead of the working tree, so a module that
a deployable lacks fails ``make test`` rather than a deploy:

- :func:`lambda_runtime`: the bundle ``infra/deploy.sh`` uploads, built by the same
  :func:`infra.package_lambda.build_lambda`, unzipped into an empty folder and run by
  the Lambda runtime's Python (``python3.12``) with nothing but the standard library,
  the bundle and the boto3 the runtime ships (:class:`infra.local.poller.Bundle`).
- :func:`image`: an image's Python as its Dockerfile builds it: a fresh venv with
  exactly the Dockerfile's ``pip install`` lines, and an app folder holding exactly
  what its ``COPY`` lines copy; :meth:`Image.command` runs a module from there.

Installing takes a minute or two, so the results are kept under ``cache`` (the
repository's ``.venv-deployables/``) by a hash of what they are made from.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra import package_lambda
from infra.local.poller import Bundle

REPO = package_lambda.REPO
CACHE = REPO / ".venv-deployables"
# What the Lambda Python runtime has besides the standard library (its boto3).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (``"3.12"``) that runs, or None."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(
        str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run(
                [candidate, "-I", "-S", "-c", "import sys; print(sys.executable)"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            continue
        if found:
            return found
    return None


def lambda_runtime(work: Path, cache: Path = CACHE) -> Bundle:
    """The functions' bundle, unzipped into ``work``, with the Lambda runtime's Python.

    Without a ``python3.12`` here, the bundle is built for this Python instead and
    run by it (still without its site-packages): the check of what the bundle holds
    stays, the check of the runtime's version does not.
    """
    version = package_lambda.LAMBDA_PYTHON
    python = find_python(version)
    if python is None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        python = sys.executable
    archive = work / "lambda.zip"
    package_lambda.build_lambda(archive, python_version=version, dependencies_cache=cache)
    task = work / "task"  # Lambda's /var/task
    task.mkdir(parents=True)
    with zipfile.ZipFile(archive) as bundle:
        bundle.extractall(task)
    runtime = work / "runtime"  # the runtime's own boto3
    runtime.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME_PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, runtime / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, runtime / name)
    return Bundle(python=python, path=(str(task), str(runtime)))


@dataclass(frozen=True)
class Image:
    """An image's Python (``venv``) and its application folder (``app``, the WORKDIR)."""

    venv: Path
    app: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def command(self, module: str) -> list[str]:
        """``python -m module`` as the image runs it: from ``app``, with the venv alone
        (``env -u PYTHONPATH``: the stack's services get the working tree on theirs)."""
        app, python = shlex.quote(str(self.app)), shlex.quote(str(self.python))
        script = f'cd {app} && exec {python} -m {module} "$@"'
        return ["env", "-u", "PYTHONPATH", "sh", "-c", script, module]


@dataclass(frozen=True)
class Dockerfile:
    """The parts of a Dockerfile that say what Python runs: its installs and copies."""

    installs: tuple[tuple[str, ...], ...]  # each `pip install`'s arguments
    copies: tuple[tuple[str, ...], ...]  # each COPY's sources (from the build context)


def _instructions(text: str) -> list[str]:
    joined, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        current += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            joined.append(current.strip())
            current = ""
    return joined


def parse_dockerfile(path: Path) -> Dockerfile:
    """The final stage's copies from the build context, and every stage's pip installs."""
    installs: list[tuple[str, ...]] = []
    copies: list[tuple[str, ...]] = []
    for instruction in _instructions(path.read_text()):
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            copies.clear()  # only the last stage is the image
        elif keyword.upper() == "COPY" and "--from=" not in rest:
            *sources, _destination = shlex.split(rest)
            copies.append(tuple(sources))
        elif keyword.upper() == "RUN":
            for command in rest.split("&&"):
                words = shlex.split(command)
                if "pip" in " ".join(words[:1]) and "install" in words and "$" not in command:
                    installs.append(tuple(words[words.index("install") + 1 :]))
    return Dockerfile(installs=tuple(installs), copies=tuple(copies))


# pip options the images use whose values are paths in the build context.
_PATH_OPTIONS = ("--constraint", "-c", "--requirement", "-r")
_DROPPED = ("--no-cache-dir", "--disable-pip-version-check")


def pip_arguments(arguments: tuple[str, ...], context: Path) -> list[str]:
    """A Dockerfile's ``pip install`` arguments for this machine: paths into ``context``."""
    out: list[str] = []
    words = iter(arguments)
    for word in words:
        if word in _DROPPED:
            continue
        if word in _PATH_OPTIONS:
            out += [word, str(context / next(words))]
        elif word.startswith(tuple(f"{option}=" for option in _PATH_OPTIONS)):
            option, _, value = word.partition("=")
            out.append(f"{option}={context / value}")
        else:
            out.append(word)
    return out


def pip_install(venv: Path, arguments: Sequence[str]) -> None:
    """``pip install arguments`` into ``venv``, by this interpreter's pip."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
         "install", "--quiet", "--disable-pip-version-check", *arguments],
        check=True,
    )  # fmt: skip


# How an image's venv gets one ``pip install`` line: the venv, the line's arguments, and
# pip itself (for what the installer cannot do otherwise).
Installer = Callable[[Path, Sequence[str], Callable[[Sequence[str]], None]], None]


def _pip_only(venv: Path, arguments: Sequence[str], pip: Callable[[Sequence[str]], None]) -> None:
    pip(arguments)


def image(
    dockerfile: Path, cache: Path = CACHE, context: Path = REPO, install: Installer = _pip_only
) -> Image:
    """The image's Python, built as its Dockerfile builds it (cached by its inputs).

    ``install`` may put a line's distributions there otherwise than pip does (the
    tests link the ones ``.venv`` already holds: tests/integration/venv_links.py), as
    long as the venv ends up holding what pip would have installed.
    """
    parsed = parse_dockerfile(dockerfile)
    installs = [pip_arguments(arguments, context) for arguments in parsed.installs]
    digest = hashlib.sha256(repr((installs, sys.version)).encode())
    for arguments in installs:  # what the constraint files say counts too
        for word in arguments:
            if Path(word).is_file():
                digest.update(Path(word).read_bytes())
    venv = cache / f"{dockerfile.parent.name}-{digest.hexdigest()[:20]}"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
        for arguments in installs:
            install(venv, arguments, functools.partial(pip_install, venv))
        (venv / ".installed").touch()
    app = cache / f"{venv.name}-app"
    shutil.rmtree(app, ignore_errors=True)  # the sources change between runs
    for sources in parsed.copies:
        for source in sources:
            origin = context / source
            if origin.is_dir():
                shutil.copytree(origin, app / source, ignore=shutil.ignore_patterns("__pycache__"))
            elif origin.is_file() and source != "requirements.lock":
                (app / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, app / source)
    return Image(venv=venv, app=app)
