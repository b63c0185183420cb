"""Ray Data as a peer: in its own venv, inside a loopback-only network namespace.

Ray is never a byom dependency: it lives in ``.bench/ray-venv``, installed only
when asked (``--ray`` or ``BENCH_RAY=1``). Ray binds every interface and rewrites
127.0.0.1 to the machine's address, so it runs in a namespace with nothing but
``lo``, with usage stats off and token auth on for every process it starts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.data import BENCH_DIR, count_lines
from bench.procs import Peaks, RssSampler

RAY_VENV = BENCH_DIR / "ray-venv"
RAY_PYTHON = RAY_VENV / "bin" / "python"
RAY_PINS = ("ray[data]==2.60.*", "xgboost-cpu==3.2.0", "pyarrow==26.0.1", "pandas==3.1.1")
NETNS = "byom-bench"
JOB = Path(__file__).with_name("ray_job.py")


@dataclass
class RayResult:
    init_seconds: float
    work_seconds: float
    rows: int
    peaks: Peaks


class RayUnavailable(Exception):
    """Why the Ray row holds no number."""


def ensure_venv(install: bool) -> None:
    if RAY_PYTHON.exists() and _ray_imports():
        return
    if not install:
        raise RayUnavailable("not installed; BENCH_RAY=1 installs Ray 2.60 in .bench/ray-venv")
    print("  installing Ray into .bench/ray-venv (slow, ~800 MB) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(RAY_VENV)], check=True)
    pip = [str(RAY_PYTHON), "-m", "pip", "install", "--quiet", *RAY_PINS]
    if subprocess.run(pip).returncode != 0 or not _ray_imports():
        raise RayUnavailable("pip could not install " + " ".join(RAY_PINS))


def _ray_imports() -> bool:
    probe = [str(RAY_PYTHON), "-c", "import ray.data, xgboost"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def ensure_netns() -> None:
    if shutil.which("ip") is None:
        raise RayUnavailable("no `ip` command to make a loopback-only network namespace")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if NETNS not in listed.stdout.split():
        made = subprocess.run(["ip", "netns", "add", NETNS], capture_output=True, text=True)
        if made.returncode != 0:
            raise RayUnavailable(f"cannot make a network namespace: {made.stderr.strip()}")
    up = ["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"]
    if subprocess.run(up, capture_output=True).returncode != 0:
        raise RayUnavailable("cannot bring up lo in the network namespace (needs root)")


def run_ray(source: Path, model_file: Path, *, install: bool, timeout: float = 1800) -> RayResult:
    ensure_venv(install)
    ensure_netns()
    out_dir = BENCH_DIR / "out" / f"ray-{source.stem}"
    shutil.rmtree(out_dir, ignore_errors=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(JOB.parents[1]),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }
    command = ["ip", "netns", "exec", NETNS, str(RAY_PYTHON), str(JOB)]
    command += [str(source), str(out_dir), str(model_file)]
    log = BENCH_DIR / "logs" / f"ray-{source.stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        with RssSampler({"ray": process.pid}, interval=0.2) as sampler:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RayUnavailable(f"did not finish within {timeout:.0f} s") from None
    lines = log.read_text(errors="replace").splitlines()
    if process.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise RayUnavailable(f"the Ray job exited with {process.returncode}; see {log}")
    report = json.loads(lines[-1])
    rows = sum(count_lines(part) for part in sorted(out_dir.glob("*.csv")))
    shutil.rmtree(out_dir, ignore_errors=True)
    return RayResult(report["init_seconds"], report["work_seconds"], rows, sampler.peaks)
