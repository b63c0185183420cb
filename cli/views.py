"""How jobs and done events look in the terminal (rich tables, one-line summaries)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli import jobs
from cli.joblogs import LogLine
from shared import endpoint_capacity
from shared.job_groups import TransformGroup, grouped
from shared.schemas import JobItem, JobState

STATE_STYLES = {
    JobState.ACCEPTED: "cyan",
    JobState.WAITING_FOR_ENDPOINT: "blue",
    JobState.SUBMITTED: "cyan",
    JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "magenta",
}
# A transform job's status, SageMaker's words (shared/transform.py).
TRANSFORM_STYLES = {
    "InProgress": "yellow",
    "Stopping": "magenta",
    "Completed": "green",
    "Failed": "bold red",
    "Stopped": "magenta",
}


# Characters that steer a terminal rather than show: C0 and C1 controls (ESC starts
# colour, hyperlink and title sequences) and the bidirectional overrides that make
# text read other than it is. Tab and newline stay.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def plain(value: object, style: str = "") -> Text:
    """Text from keys, errors and log lines as it is: never read as Rich markup, and
    each control character shown escaped (``\\x1b``) rather than sent to the terminal."""
    return Text(_CONTROLS.sub(_escaped, str(value)), style=style)


def console(stderr: bool = False) -> Console:
    """A console; piped output gets wide tables and messages never broken mid-line
    (scripts grep them). Strings print as they are (no markup): style goes in Text."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty()
    return Console(
        stderr=stderr,
        width=200 if piped else None,
        soft_wrap=piped,
        highlight=False,
        markup=False,
    )


def error_line(message: object, label: str = "error:") -> Text:
    """``error: <message>``, the label red and the message plain text."""
    return Text.assemble((label, "red"), " ", plain(message))


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def state(job_state: JobState) -> Text:
    return Text(job_state.value, style=STATE_STYLES[job_state])


def _short(error: str | None) -> Text:
    error = error or ""
    return plain(error if len(error) <= 80 else error[:77] + "...")


def _new_jobs_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for name, justify in [
        ("job", "left"), ("input", "left"), ("state", "left"), ("chunks", "right"),
        ("rows", "right"), ("bad rows", "right"), ("model", "left"), ("duration", "right"),
        ("error", "left"),
    ]:  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    return table


def _add_job(table: Table, job: JobItem, now: datetime, indent: str = "") -> None:
    label = job.job_id if not indent else f"{indent}{job.transform_index}: {job.job_id}"
    table.add_row(
        plain(label),
        plain(job.input_key),
        state(job.state),
        f"{job.chunks_done}/{job.chunk_count}",
        f"{job.rows:,}",
        f"{job.bad_rows:,}",
        plain(jobs.model_label(job)),
        seconds(jobs.duration_seconds(job, now)),
        _short(job.error),
    )


def _add_group(table: Table, group: TransformGroup, now: datetime, status: str) -> None:
    """The transform job's row, then one indented row per object."""
    duration = max(jobs.duration_seconds(job, now) for job in group.objects)
    table.add_row(
        plain(f"transform {group.name}"),
        plain(f"{len(group.objects)} objects"),
        Text(status, style=TRANSFORM_STYLES.get(status, "")),
        f"{group.chunks_done}/{group.chunk_count}",
        f"{group.rows:,}",
        f"{group.bad_rows:,}",
        plain(jobs.model_label(group.objects[0])),
        seconds(duration),
        _short(group.first_error),
    )
    for job in group.objects:
        _add_job(table, job, now, indent="  ")


def jobs_table(items: list[JobItem], now: datetime | None = None) -> Table:
    """Recent jobs; a transform job's objects are listed under it."""
    now = now or datetime.now(UTC)
    table = _new_jobs_table("byom jobs, latest first")
    for entry in grouped(items):
        if isinstance(entry, TransformGroup):
            _add_group(table, entry, now, entry.status)
        else:
            _add_job(table, entry, now)
    return table


def transform_table(
    group: TransformGroup, status: str | None = None, now: datetime | None = None
) -> Table:
    """One transform job and its objects; ``status`` is its record's, when read."""
    now = now or datetime.now(UTC)
    table = _new_jobs_table(f"transform job {group.name}")
    _add_group(table, group, now, status or group.status)
    return table


def job_detail(job: JobItem, now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text | None]] = [
        ("job", plain(job.job_id)),
        ("state", state(job.state)),
        ("input", _plain_or_none(jobs.uri(job, job.input_key))),
        ("output", _plain_or_none(jobs.uri(job, job.output_key))
         if job.state is JobState.SUCCEEDED else None),
        ("errors report", _plain_or_none(jobs.uri(job, job.errors_key))),
        ("chunks", f"{job.chunks_done} of {job.chunk_count} done"),
        ("rows", f"{job.rows:,}"),
        ("bad rows", f"{job.bad_rows:,} (on bad rows: {job.policy.on_bad_rows.value}, "
                     f"at most {job.policy.max_bad_rows})"),
        ("model", plain(jobs.model_label(job))),
        ("size", f"{job.input_size:,} bytes"),
        ("created", job.created_at.isoformat()),
        ("finished", job.finished_at.isoformat() if job.finished_at else None),
        ("duration", seconds(jobs.duration_seconds(job, now))),
        ("endpoint wait", _endpoint_wait(job, now)),
        ("Batch job", _plain_or_none(job.batch_job_id)),
        ("retries", str(job.retries) if job.retries else None),
        ("transform job", plain(f"{job.transform_job_name}, object {job.transform_index}")
         if job.transform_job_name else None),
        ("error", plain(job.error, "red") if job.error else None),
    ]  # fmt: skip
    for name, value in rows:
        if value is not None:
            table.add_row(name, value)
    return table


def _endpoint_wait(job: JobItem, now: datetime) -> str | None:
    """The cold start: how long the job waited for a scale-to-zero endpoint to wake."""
    waited = endpoint_capacity.waited(job, now)
    if waited is None:
        return None
    if job.state is JobState.WAITING_FOR_ENDPOINT:
        return f"{seconds(waited)} so far (the endpoint is waking)"
    return seconds(waited)


def _plain_or_none(value: str | None) -> Text | None:
    return plain(value) if value else None


def event_line(detail: dict[str, Any]) -> Text:
    status = str(detail.get("status", "?"))
    style = {"SUCCEEDED": "green", "CANCELLED": "magenta"}.get(status, "bold red")
    text = plain(f"{status:<9}", style)
    text.append_text(plain(f" {detail.get('job_id', '?')}  {detail.get('input_uri', '?')}"))
    if detail.get("output_uri"):
        text.append_text(plain(f" -> {detail['output_uri']}"))
    text.append(f"  {detail.get('rows', 0):,} rows")
    if detail.get("bad_rows"):
        text.append(f" ({detail['bad_rows']:,} bad)")
    text.append(f"  {seconds(float(detail.get('duration_seconds') or 0))}")
    if detail.get("error"):
        text.append_text(plain(f"  {detail['error']}", "red"))
    return text


def log_line(line: LogLine) -> Text:
    return plain(line.render())
