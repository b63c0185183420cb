"""A cold-start proxy for byom's Lambda functions: what importing each handler costs,
alone and with pyarrow (and pandas) on top, in fresh interpreters.

    python -m bench.lambda_cold_start            # best of 5, .pyc files as installed
    python -m bench.lambda_cold_start --no-pyc   # only the standard library precompiled

Each figure is the best of ``--runs`` fresh processes: the wall time of the whole
process (interpreter start included), its CPU time (user + system: what a function
with a fraction of a vCPU waits for, and steadier than wall time on a busy machine),
the import time Python itself reports with ``-X importtime`` (the sum of its
top-level imports) and the resident set after the imports (median).

``--no-pyc`` gives the runs a bytecode cache holding the standard library only, and
writes none: the Lambda bundle ships no ``.pyc`` and the function's code
directory is read-only, so the functions compile byom's code and its dependencies
at every cold start (the runtime's own standard library is compiled). The decision
these figures feed is written in docs/lambda-packaging.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The modules named by the template's Handler properties (infra/cloudformation/byom.yaml).
HANDLERS = (
    "services.ingest.handler",
    "services.scheduler.handler",
    "services.status.handler",
    "services.status.dead_letter_handler",
    "services.status.reaper_handler",
)
PYARROW = ("pyarrow", "pyarrow.parquet")
PANDAS = ("pandas",)

# Imports the modules named on its command line, then prints its VmRSS in KiB.
_CHILD = """\
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
"""


@dataclass(frozen=True)
class Case:
    label: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Figures:
    wall_ms: float  # best of the runs
    cpu_ms: float  # best of the runs, user + system
    import_ms: float  # best of the runs, as -X importtime reports it
    rss_mib: float  # median of the runs


def cases() -> list[Case]:
    """The interpreter alone, the libraries alone, then each handler three ways."""
    found = [
        Case("python -c pass", ()),
        Case("pyarrow, pyarrow.parquet", PYARROW),
        Case("pandas", PANDAS),
    ]
    for handler in HANDLERS:
        found += [
            Case(handler, (handler,)),
            Case(f"{handler} + pyarrow", (handler, *PYARROW)),
            Case(f"{handler} + pyarrow + pandas", (handler, *PYARROW, *PANDAS)),
        ]
    return found


def _top_level_import_us(stderr: str) -> int:
    """The sum of the cumulative times of -X importtime's top-level lines."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue  # the header line
        if not fields[2].startswith("  "):  # nested imports are indented further
            total += int(fields[1])
    return total


# Directories of the standard library the functions never import, left uncompiled.
_STDLIB_SKIP = r"[/\\](test|tests|idlelib|tkinter|turtledemo|site-packages|dist-packages)[/\\]"


def stdlib_only_cache(prefix: Path) -> Path:
    """A bytecode cache (``PYTHONPYCACHEPREFIX``) holding the standard library alone."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    stdlib = sysconfig.get_paths()["stdlib"]
    command = [sys.executable, "-m", "compileall", "-q", "-x", _STDLIB_SKIP, stdlib]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return prefix


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_once(case: Case, *, importtime: bool, cache: Path | None) -> tuple[float, float, str, str]:
    """One fresh interpreter: (wall seconds, CPU seconds, stdout, stderr).

    ``cache``: read bytecode from there only and write none (``-B``), as a function
    reads its read-only code directory."""
    env = dict(os.environ)
    flags = ["-X", "importtime"] if importtime else []
    if cache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
        flags.append("-B")
    command = [sys.executable, *flags, "-c", _CHILD, *case.modules]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{case.label}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return elapsed, cpu, done.stdout, done.stderr


def measure(case: Case, runs: int, *, cache: Path | None = None) -> Figures:
    walls: list[float] = []
    cpus: list[float] = []
    rss_kib: list[int] = []
    imports: list[int] = []
    for _ in range(runs):
        elapsed, cpu, stdout, _ = _run_once(case, importtime=False, cache=cache)
        walls.append(elapsed)
        cpus.append(cpu)
        rss_kib.append(int(stdout.strip()))
        _, _, _, stderr = _run_once(case, importtime=True, cache=cache)
        imports.append(_top_level_import_us(stderr))
    return Figures(
        wall_ms=min(walls) * 1000,
        cpu_ms=min(cpus) * 1000,
        import_ms=min(imports) / 1000,
        rss_mib=statistics.median(rss_kib) / 1024,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per figure")
    parser.add_argument("--no-pyc", action="store_true", help="compile every module anew")
    args = parser.parse_args(argv)

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    bytecode = "standard library .pyc only" if args.no_pyc else ".pyc as installed"
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {load}; "
        f"best of {args.runs}; {bytecode}\n"
    )
    with tempfile.TemporaryDirectory(prefix="byom-pyc-") as scratch:
        cache = stdlib_only_cache(Path(scratch)) if args.no_pyc else None
        print("| imports | wall ms | CPU ms | -X importtime ms | RSS MiB |")
        print("|---|---:|---:|---:|---:|")
        for case in cases():
            figures = measure(case, args.runs, cache=cache)
            print(
                f"| {case.label} | {figures.wall_ms:.0f} | {figures.cpu_ms:.0f} "
                f"| {figures.import_ms:.0f} "
                f"| {figures.rss_mib:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
