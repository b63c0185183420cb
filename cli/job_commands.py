"""byom submit, status, cancel and retry: the commands that start, show and steer jobs.

main.py registers them on the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cli import control, jobs, submit, views
from cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, fail
from cli.progress import show_progress, show_result
from cli.target import Target
from cli.where import target_of
from shared.errors import ByomError
from shared.job_groups import TransformGroup
from shared.schemas import BadRows, JobItem, JobState


def submit_command(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV to score.")
    ],
    model: Annotated[
        str | None, typer.Option(help="A registry model, NAME or NAME:VERSION (byom-model).")
    ] = None,
    on_bad_rows: Annotated[
        BadRows | None, typer.Option(help="Fail the job, or skip bad rows (byom-on-bad-rows).")
    ] = None,
    max_bad_rows: Annotated[
        int | None, typer.Option(help="With skip: the most bad rows, -1 no limit.")
    ] = None,
    meta: Annotated[
        list[str] | None, typer.Option(help="More S3 metadata, KEY=VALUE; repeatable.")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="The name under input/ (default: the file's name).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the job ends.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
) -> None:
    """Upload FILE to input/ and, with --wait, follow its job to the end.

    Exit status with --wait: 0 when the job SUCCEEDED, 1 when it FAILED.
    """
    target = target_of(ctx)
    try:
        metadata = submit.metadata(
            model=model, on_bad_rows=on_bad_rows, max_bad_rows=max_bad_rows, meta=meta
        )
        object_key = submit.input_key(target, file, key)
    except submit.SubmitError as exc:
        fail(str(exc), EXIT_USAGE)
    out = views.console()
    submitted = submit.upload(target, file, object_key, metadata)
    out.print(views.plain(f"uploaded {file} to {submitted.uri}\njob {submitted.job_id}"))
    follow(target, submitted.job_id, wait=wait, timeout=timeout)


def status(
    ctx: typer.Context,
    job: Annotated[
        str | None, typer.Argument(help="A job id (or a prefix of one): show it in detail.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many recent jobs to list.")] = 20,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON job item per line instead of a table.")
    ] = False,
) -> None:
    """A table of recent jobs, or one job in detail; a transform job's name lists its objects."""
    target = target_of(ctx)
    out = views.console()
    if job is None:
        items = jobs.recent(target, limit)
    else:
        try:
            items = [jobs.find(target, job)]
        except jobs.JobNotFound as exc:
            objects = jobs.of_transform_job(target, job)
            if not objects:
                fail(str(exc))
            if json_lines:
                for item in objects:
                    print(item.model_dump_json())
                return
            group = TransformGroup(job, tuple(objects))
            out.print(views.transform_table(group, jobs.transform_status(target, job)))
            return
    if json_lines:
        for item in items:
            print(item.model_dump_json())
        return
    if job is not None:
        out.print(views.job_detail(items[0]))
    elif items:
        out.print(views.jobs_table(items))
    else:
        out.print(views.plain(f"no jobs yet in {target.jobs_table}"))


def cancel(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job id (or a prefix of one).")],
    reason: Annotated[
        str, typer.Option(help="Why; the job's error and done event say it.")
    ] = "by byom cancel",
) -> None:
    """Stop a job: its Batch array ends, no output is written, the job stays, CANCELLED.

    Its done event goes out with status CANCELLED. byom retry runs it again later.
    """
    target = target_of(ctx)
    found = _find(target, job)
    try:
        ended = control.cancel(target, found.job_id, reason)
    except ByomError as exc:
        fail(str(exc))
    out = views.console()
    if ended.state is JobState.CANCELLED and found.state is not JobState.CANCELLED:
        out.print(Text.assemble(views.state(ended.state), " ", views.plain(ended.job_id)))
        out.print(f"run it again, from the chunks it finished: byom retry {ended.job_id}")
        return
    fail(f"job {ended.job_id} had ended already: {ended.state.value}")


def retry(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job id (or a prefix of one).")],
    wait: Annotated[bool, typer.Option(help="Show progress until the job ends.")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up after this many seconds.")
    ] = None,
) -> None:
    """Run a FAILED or CANCELLED job again; the chunks it finished are not scored again.

    Exit status with --wait: 0 when the job SUCCEEDED, 1 otherwise.
    """
    target = target_of(ctx)
    found = _find(target, job)
    try:
        retried = control.retry(target, found.job_id)
    except ByomError as exc:
        fail(str(exc))
    out = views.console()
    left = retried.chunk_count - retried.chunks_done
    out.print(
        views.plain(
            f"job {retried.job_id} runs again (retry {retried.retries}): "
            f"{left} of {retried.chunk_count} chunks to score"
        )
    )
    follow(target, retried.job_id, wait=wait, timeout=timeout)


def follow(target: Target, job_id: str, *, wait: bool, timeout: float | None) -> None:
    """Show the job's progress until it ends (``wait``), or how to follow it."""
    out = views.console()
    if not wait:
        out.print(f"follow it with: byom status {job_id}")
        return
    try:
        job = show_progress(target, job_id, timeout)
    except KeyboardInterrupt:
        out.print(f"stopped watching; the job goes on: byom status {job_id}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except TimeoutError as exc:
        fail(f"{exc}; it may still finish: byom status {job_id}")
    show_result(job)


def _find(target: Target, job: str) -> JobItem:
    try:
        return jobs.find(target, job)
    except jobs.JobNotFound as exc:
        fail(str(exc))
