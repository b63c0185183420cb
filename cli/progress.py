"""A job followed to its end: a progress bar (or plain lines when piped), then its result.

Used by byom submit --wait and byom retry --wait.
"""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cli import jobs, submit, views
from cli.exits import fail
from cli.target import Target
from shared.schemas import JobItem, JobState


def show_progress(target: Target, job_id: str, timeout: float | None) -> JobItem:
    out = views.console()
    last: JobItem | None = None
    if not out.is_terminal:
        # Piped: one plain line per change, nothing redrawn.
        for job in submit.watch(target, job_id, timeout=timeout):
            out.print(submit.progress_of(job).line())
            last = job
        assert last is not None
        return last
    columns = (
        TextColumn("{task.fields[state]:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out) as bar:
        task = bar.add_task("job", total=None, state="waiting", rows=0, rate=0.0)
        for job in submit.watch(target, job_id, timeout=timeout):
            progress = submit.progress_of(job)
            bar.update(
                task,
                total=progress.chunk_count or None,
                completed=progress.chunks_done,
                state=progress.state,
                rows=progress.rows,
                rate=progress.rows_per_second,
            )
            last = job
    assert last is not None
    return last


def show_result(job: JobItem) -> None:
    out = views.console()
    duration = views.seconds(jobs.duration_seconds(job))
    if job.state is JobState.SUCCEEDED:
        out.print(
            Text.assemble(
                ("SUCCEEDED", "green"), f" in {duration}: {job.rows:,} rows, {job.bad_rows:,} bad"
            )
        )
        out.print(views.plain(f"output  {jobs.uri(job, job.output_key)}"))
        if job.errors_key:
            out.print(views.plain(f"errors  {jobs.uri(job, job.errors_key)}"))
        return
    fail(f"job {job.job_id} {job.state.value} after {duration}: {job.error}")
