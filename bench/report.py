"""The results table: plain data in, markdown out (printed and written to a file).

Every row's figures are divided by those of the in-process limit on the same
file, so "x3.0" in the time column means three times as long as the limit.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

LIMIT = "in-process limit"


@dataclass
class Row:
    name: str
    rows: int
    seconds: float | None = None
    peak_rss: int | None = None  # bytes, all processes of the run at once
    processes: str = ""  # the largest processes, in words
    note: str = ""  # why there is no number, or what the number includes
    all_processes: str = ""  # every process's VmHWM, for the breakdown below the table


def breakdown(rows: list[Row]) -> list[str]:
    """One line per run with every process's peak RSS (VmHWM)."""
    return [
        f"- {row.name}, {row.rows:,} rows: {row.all_processes}" for row in rows if row.all_processes
    ]


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def ratio(value: float | None, base: float | None) -> str:
    """``value`` as a multiple of ``base``; "-" when either is missing or base is 0."""
    if value is None or not base:
        return "-"
    return f"x{value / base:.2f}" if value / base < 10 else f"x{value / base:.0f}"


def rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds else None


def _number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.{digits}f}"


def table(rows: list[Row]) -> str:
    """Markdown table; ratios against the ``LIMIT`` row with the same row count."""
    limits = {row.rows: row for row in rows if row.name == LIMIT}
    header = (
        "| name | rows | seconds | rows/s | peak RSS | time / limit | rows/s / limit "
        "| RSS / limit | processes, notes |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        base = limits.get(row.rows)
        base_seconds = base.seconds if base else None
        base_rate = rate(row.rows, base_seconds)
        notes = "; ".join(part for part in (row.processes, row.note) if part)
        lines.append(
            "| "
            + " | ".join(
                [
                    row.name,
                    f"{row.rows:,}",
                    _number(row.seconds, 3),
                    _number(rate(row.rows, row.seconds)),
                    human_bytes(row.peak_rss),
                    ratio(row.seconds, base_seconds),
                    ratio(rate(row.rows, row.seconds), base_rate),
                    ratio(row.peak_rss, base.peak_rss if base else None),
                    notes.replace("|", "/"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def roles_line(by_role: list[tuple[str, int, int]], top: int = 0) -> str:
    """E.g. "moto 410 MiB, batch child (4, largest) 150 MiB" (largest first; top 0: all)."""
    ordered = sorted(by_role, key=lambda item: -item[2])
    parts = [
        f"{role}{f' ({count}, largest)' if count > 1 else ''} {human_bytes(hwm)}"
        for role, count, hwm in (ordered[:top] if top else ordered)
    ]
    return ", ".join(parts)


def parse_cpuinfo(text: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine()


def parse_meminfo(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def machine() -> str:
    """CPU model, cores, RAM and the date, for the top of the report."""
    import os

    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = parse_cpuinfo(read("/proc/cpuinfo"))
    ram = human_bytes(parse_meminfo(read("/proc/meminfo")))
    cores = len(os.sched_getaffinity(0))
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    return f"{cpu}, {cores} cores, {ram} RAM, Python {platform.python_version()}; {stamp}"
