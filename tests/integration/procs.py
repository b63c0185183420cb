"""Find the local stack's Batch children among this machine's processes (Linux /proc)."""

from __future__ import annotations

import contextlib
from pathlib import Path

WORKER_MODULE = "services.inference_worker.main"


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    return None


def _environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def workers_of(batch_runner_pid: int, job_id: str | None = None) -> list[int]:
    """PIDs of worker processes of the given local Batch runner (and byom job)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _parent(pid) != batch_runner_pid or WORKER_MODULE not in _cmdline(pid):
            continue
        if job_id is None or _environment(pid).get("BYOM_JOB_ID") == job_id:
            found.append(pid)
    return found
