"""How jobs and done events look in the terminal (rich tables, one-line summaries)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli import jobs
from shared.schemas import JobItem, JobState

STATE_STYLES = {
    JobState.ACCEPTED: "cyan",
    JobState.SUBMITTED: "cyan",
    JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "bold red",
}


def console(stderr: bool = False) -> Console:
    """A console; piped output gets wide tables and messages never broken mid-line
    (scripts grep them)."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty()
    return Console(stderr=stderr, width=200 if piped else None, soft_wrap=piped, highlight=False)


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def state(job_state: JobState) -> Text:
    return Text(job_state.value, style=STATE_STYLES[job_state])


def jobs_table(items: list[JobItem], now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(title="byom jobs, latest first", title_justify="left", expand=False)
    for name, justify in [
        ("job", "left"), ("input", "left"), ("state", "left"), ("chunks", "right"),
        ("rows", "right"), ("bad rows", "right"), ("model", "left"), ("duration", "right"),
        ("error", "left"),
    ]:  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for job in items:
        error = job.error or ""
        table.add_row(
            job.job_id,
            job.input_key,
            state(job.state),
            f"{job.chunks_done}/{job.chunk_count}",
            f"{job.rows:,}",
            f"{job.bad_rows:,}",
            jobs.model_label(job),
            seconds(jobs.duration_seconds(job, now)),
            error if len(error) <= 80 else error[:77] + "...",
        )
    return table


def job_detail(job: JobItem, now: datetime | None = None) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text | None]] = [
        ("job", job.job_id),
        ("state", state(job.state)),
        ("input", jobs.uri(job, job.input_key)),
        ("output", jobs.uri(job, job.output_key) if job.state is JobState.SUCCEEDED else None),
        ("errors report", jobs.uri(job, job.errors_key)),
        ("chunks", f"{job.chunks_done} of {job.chunk_count} done"),
        ("rows", f"{job.rows:,}"),
        ("bad rows", f"{job.bad_rows:,} (on bad rows: {job.policy.on_bad_rows.value}, "
                     f"at most {job.policy.max_bad_rows})"),
        ("model", jobs.model_label(job)),
        ("size", f"{job.input_size:,} bytes"),
        ("created", job.created_at.isoformat()),
        ("finished", job.finished_at.isoformat() if job.finished_at else None),
        ("duration", seconds(jobs.duration_seconds(job, now))),
        ("Batch job", job.batch_job_id),
        ("error", Text(job.error, style="red") if job.error else None),
    ]  # fmt: skip
    for name, value in rows:
        if value is not None:
            table.add_row(name, value)
    return table


def event_line(detail: dict[str, Any]) -> Text:
    status = str(detail.get("status", "?"))
    text = Text(f"{status:<9}", style="green" if status == "SUCCEEDED" else "bold red")
    text.append(f" {detail.get('job_id', '?')}  {detail.get('input_uri', '?')}")
    if detail.get("output_uri"):
        text.append(f" -> {detail['output_uri']}")
    text.append(f"  {detail.get('rows', 0):,} rows")
    if detail.get("bad_rows"):
        text.append(f" ({detail['bad_rows']:,} bad)")
    text.append(f"  {seconds(float(detail.get('duration_seconds') or 0))}")
    if detail.get("error"):
        text.append(f"  {detail['error']}", style="red")
    return text
