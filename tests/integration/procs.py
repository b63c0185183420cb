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


def workers_of(batch_runner_pid: int) -> list[int]:
    """PIDs of worker processes whose parent is the given local Batch runner."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if _parent(pid) == batch_runner_pid and WORKER_MODULE in _cmdline(pid):
            found.append(pid)
    return found
