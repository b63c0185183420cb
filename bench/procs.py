"""Peak memory of a process tree, read from /proc while it runs.

VmHWM (the kernel's high-water mark of a process's resident set) is exact for a
process that is still there at the last sample; a child that exits between two
samples keeps the figure of the sample before, so the interval is short. The
tree is walked again at every sample because Batch children come and go.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def parse_status(text: str) -> dict[str, int]:
    """VmHWM and VmRSS in bytes from the text of /proc/<pid>/status (missing: absent)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            value, _, unit = rest.strip().partition(" ")
            if unit.strip() != "kB":
                raise ValueError(f"unexpected unit in {line!r}")
            found[name] = int(value) * 1024
    return found


def parse_stat(text: str) -> tuple[str, int]:
    """(command name, parent pid) from /proc/<pid>/stat.

    The name sits in parentheses and may itself hold spaces or ')', so fields are
    counted from the last ')'.
    """
    head, _, tail = text.rpartition(")")
    name = head.partition("(")[2]
    fields = tail.split()
    return name, int(fields[1])


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def process_table() -> dict[int, tuple[str, int]]:
    """Every live pid with its (name, parent pid)."""
    table: dict[int, tuple[str, int]] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            text = _read(PROC / entry.name / "stat")
            if text is not None:
                table[int(entry.name)] = parse_stat(text)
    return table


def descendants(root: int, table: dict[int, tuple[str, int]]) -> list[int]:
    """Every pid below ``root`` in ``table`` (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for pid, (_name, parent) in table.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


@dataclass
class ProcessPeak:
    role: str  # the root's name, or "<root> child"
    pid: int
    name: str
    hwm: int  # bytes


@dataclass
class Peaks:
    processes: list[ProcessPeak] = field(default_factory=list)
    total_rss: int = 0  # the largest sum of VmRSS over the tree seen at one instant

    def by_role(self) -> list[tuple[str, int, int]]:
        """(role, processes, largest VmHWM) per role, in first-seen order."""
        roles: dict[str, list[int]] = {}
        for peak in self.processes:
            roles.setdefault(peak.role, []).append(peak.hwm)
        return [(role, len(hwms), max(hwms)) for role, hwms in roles.items()]

    def largest(self) -> int:
        return max((peak.hwm for peak in self.processes), default=0)


class RssSampler:
    """Samples the trees under ``roots`` (role -> pid) every ``interval`` seconds.

    Use as a context manager around the work; ``peaks`` holds the result after.
    """

    def __init__(self, roots: dict[str, int], interval: float = 0.1) -> None:
        self.roots = dict(roots)
        self.interval = interval
        self.peaks = Peaks()
        self._seen: dict[int, ProcessPeak] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> None:
        table = process_table()
        total = 0
        for role, root in list(self.roots.items()):
            members = [(root, role)] + [(pid, f"{role} child") for pid in descendants(root, table)]
            for pid, member_role in members:
                status = _read(PROC / str(pid) / "status")
                if status is None:
                    continue
                figures = parse_status(status)
                total += figures.get("VmRSS", 0)
                hwm = figures.get("VmHWM", 0)
                peak = self._seen.get(pid)
                if peak is None:
                    name = table.get(pid, ("?", 0))[0]
                    peak = self._seen[pid] = ProcessPeak(member_role, pid, name, hwm)
                    self.peaks.processes.append(peak)
                peak.hwm = max(peak.hwm, hwm)
        self.peaks.total_rss = max(self.peaks.total_rss, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
