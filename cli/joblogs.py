"""``byom logs``: one job's lines from every service, in time order.

Every line a job causes carries its ``job_id`` (``shared/logs.py``). Locally the
stack writes one file per service (``<log dir>/<service>.log``: the Lambda
pollers, local Batch and its children, the reaper); on AWS the lines are in
the stack's CloudWatch log groups (its ``LogGroupNames`` output).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Powertools' default timestamp: 2026-12-01 12:37:55,123+0000
_POWERTOOLS_TIME = "%Y-%m-%d %H:%M:%S,%f%z"
# Keys every line has; the rest are the line's own.
_COMMON = {"level", "location", "message", "timestamp", "service", "job_id", "trace_id",
           "chunk_index", "sampling_rate", "xray_trace_id", "cold_start", "function_name",
           "function_memory_size", "function_arn", "function_request_id"}  # fmt: skip


@dataclass(frozen=True, order=True)
class LogLine:
    time: datetime
    order: int  # where it was found, so lines of the same millisecond keep their order
    source: str = field(compare=False)  # the file or log group it came from
    record: dict[str, Any] = field(compare=False)

    @property
    def service(self) -> str:
        return str(self.record.get("service") or self.source)

    def render(self) -> str:
        record = self.record
        chunk = record.get("chunk_index")
        extras = " ".join(
            f"{key}={_short(value)}"
            for key, value in record.items()
            if key not in _COMMON and not (key == "chunk" and value == chunk)
        )
        text = f"{self.time:%H:%M:%S.%f}"[:-3] + f" {self.service:<24} {record.get('level', ''):<7}"
        text += f" {record.get('message', '')}"
        if chunk is not None:
            text += f" chunk={chunk}"
        return text + (f" {extras}" if extras else "")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."


def parse_time(text: Any, fallback: datetime | None = None) -> datetime | None:
    if isinstance(text, str):
        for pattern in (_POWERTOOLS_TIME, "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return datetime.strptime(text, pattern)
            except ValueError:
                continue
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def parse_line(
    text: str, job_id: str, *, source: str, order: int, fallback: datetime | None = None
) -> LogLine | None:
    """The line as a record if it is one of the job's JSON lines; None otherwise."""
    if job_id not in text:  # most lines: no JSON parse needed
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("job_id") != job_id:
        return None
    when = parse_time(record.get("timestamp"), fallback)
    if when is None:
        return None
    return LogLine(when, order, source, record)


def from_files(log_dir: Path, job_id: str) -> list[LogLine]:
    """The job's lines in every ``*.log`` under ``log_dir``, oldest first."""
    found: list[LogLine] = []
    order = 0
    for path in sorted(log_dir.glob("*.log")):
        with path.open(errors="replace") as lines:
            for text in lines:
                order += 1
                line = parse_line(text, job_id, source=path.stem, order=order)
                if line is not None:
                    found.append(line)
    return sorted(found)


def from_events(events: Iterable[tuple[str, dict[str, Any]]], job_id: str) -> list[LogLine]:
    """CloudWatch Logs events, as ``(log group, event)``, to the job's lines, oldest first."""
    found: list[LogLine] = []
    for order, (group, event) in enumerate(events):
        stamp = datetime.fromtimestamp(event.get("timestamp", 0) / 1000, UTC)
        line = parse_line(
            event.get("message", ""), job_id, source=group.rsplit("/", 1)[-1], order=order,
            fallback=stamp,
        )  # fmt: skip
        if line is not None:
            found.append(line)
    return sorted(found)


def cloudwatch_events(
    logs: Any, groups: Iterable[str], job_id: str, start: datetime
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every event naming the job in each group since ``start`` (a term filter on the id)."""
    paginator = logs.get_paginator("filter_log_events")
    for group in groups:
        pages = paginator.paginate(
            logGroupName=group,
            filterPattern=f'"{job_id}"',
            startTime=int(start.timestamp() * 1000),
        )
        for page in pages:
            for event in page.get("events", []):
                yield group, event
