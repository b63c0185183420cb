"""byom: run the local stack, submit files, watch jobs, done events and logs.

Locally it points at make up's stack (--endpoint-url, default
http://127.0.0.1:4566); with --stack NAME at a deployed stack on AWS, whose
CloudFormation outputs give every name.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from cli import control, follow, joblogs, jobs, submit, transform, views
from cli.target import LOCAL_ENDPOINT, Target, TargetError, local_target, stack_target
from shared.errors import ByomError
from shared.job_groups import TransformGroup
from shared.schemas import BadRows, JobItem, JobState


class _App(typer.Typer):
    """Errors from AWS or the network as one line that says what to do, not a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except EndpointConnectionError as exc:
            message = f"cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}"
            if "127.0.0.1" in message or "localhost" in message:
                message += ": is the local stack up (make up, or byom up)?"
            views.console(stderr=True).print(views.error_line(message))
        except NoCredentialsError:
            views.console(stderr=True).print(
                views.error_line("no AWS credentials (aws configure, or AWS_PROFILE)")
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            views.console(stderr=True).print(
                views.error_line(
                    f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}"
                )
            )
        sys.exit(EXIT_FAILED)


app = _App(
    name="byom",
    help=__doc__,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(transform.app)

EXIT_FAILED = 1  # the job FAILED
EXIT_USAGE = 2  # a setting is wrong (as click's own usage errors)
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Where:
    endpoint_url: str | None
    stack: str | None
    region: str | None
    bucket: str | None
    log_dir: Path | None

    def target(self) -> Target:
        try:
            if self.stack:
                return stack_target(self.stack, region=self.region, endpoint_url=self.endpoint_url)
        except TargetError as exc:
            fail(str(exc), EXIT_USAGE)
        return local_target(
            self.endpoint_url or LOCAL_ENDPOINT,
            region=self.region or "us-east-1",
            bucket=self.bucket,
            log_dir=self.log_dir,
        )


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    views.console(stderr=True).print(views.error_line(message))
    raise typer.Exit(code)


@app.callback()
def where(
    ctx: typer.Context,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="AWS_ENDPOINT_URL",
            help="The AWS endpoint; without --stack the local stack's, " + LOCAL_ENDPOINT,
        ),
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(envvar="BYOM_STACK", help="A deployed CloudFormation stack: use AWS."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="The AWS region (default: boto3's).")] = None,
    bucket: Annotated[
        str | None, typer.Option(help="The local stack's bucket (default byom-local).")
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(envvar="BYOM_LOG_DIR", help="The local stack's log files (.byom/logs)."),
    ] = None,
) -> None:
    ctx.obj = Where(endpoint_url, stack, region, bucket, log_dir)


def _target(ctx: typer.Context) -> Target:
    where: Where = ctx.obj
    return where.target()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def up(ctx: typer.Context) -> None:
    """Run the local stack in the foreground, as make up does (its options: byom up --help)."""
    command = [sys.executable, "-m", "infra.local.up", *ctx.args]
    # Replace this process: Ctrl-C and SIGTERM reach the stack's own handlers.
    os.execv(sys.executable, command)


@app.command("submit")
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
    target = _target(ctx)
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
    if not wait:
        out.print(f"follow it with: byom status {submitted.job_id}")
        return
    try:
        job = _show_progress(target, submitted.job_id, timeout)
    except KeyboardInterrupt:
        out.print(f"stopped watching; the job goes on: byom status {submitted.job_id}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except TimeoutError as exc:
        fail(f"{exc}; it may still finish: byom status {submitted.job_id}")
    _show_result(job)


def _show_progress(target: Target, job_id: str, timeout: float | None) -> JobItem:
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


def _show_result(job: JobItem) -> None:
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


@app.command()
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
    target = _target(ctx)
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


@app.command()
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
    target = _target(ctx)
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


@app.command()
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
    target = _target(ctx)
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
    if not wait:
        out.print(f"follow it with: byom status {retried.job_id}")
        return
    try:
        final = _show_progress(target, retried.job_id, timeout)
    except KeyboardInterrupt:
        out.print(f"stopped watching; the job goes on: byom status {retried.job_id}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except TimeoutError as exc:
        fail(f"{exc}; it may still finish: byom status {retried.job_id}")
    _show_result(final)


def _find(target: Target, job: str) -> JobItem:
    try:
        return jobs.find(target, job)
    except jobs.JobNotFound as exc:
        fail(str(exc))


@app.command()
def events(
    ctx: typer.Context,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep listening until Ctrl-C.")
    ] = False,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print each event's detail as JSON.")
    ] = False,
) -> None:
    """Print byom's done events as they come (without --follow: the next one).

    A queue and a rule on the bus are made for this run and removed when it ends.
    """
    target = _target(ctx)
    out, err = views.console(), views.console(stderr=True)
    follow.interrupt_on_signals()
    try:
        subscription = follow.subscribe(target)  # removes what it made if interrupted
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    try:
        err.print(
            f"listening on {subscription.bus} (rule and queue {subscription.name}); "
            "Ctrl-C stops and removes them"
        )
        while True:
            details = follow.receive(target, subscription, wait_seconds=5)
            for detail in details:
                if json_lines:
                    print(detail_json(detail), flush=True)
                else:
                    out.print(views.event_line(detail))
                    sys.stdout.flush()
            if details and not follow_:
                break
    except KeyboardInterrupt:
        pass
    finally:
        follow.ignore_signals()
        problems = follow.unsubscribe(target, subscription)
        for problem in problems:
            err.print(views.error_line(problem, f"could not remove {subscription.name}:"))
        if not problems:
            err.print(f"removed rule and queue {subscription.name}")


def detail_json(detail: dict[str, object]) -> str:
    return json.dumps(detail, sort_keys=True, default=str)


@app.command()
def logs(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job id (or a prefix of one).")],
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print the log records as JSON lines.")
    ] = False,
) -> None:
    """Every service's log lines for one job, in time order."""
    target = _target(ctx)
    found: JobItem | None = None
    job_id = job
    try:
        found = jobs.find(target, job)
        job_id = found.job_id
    except jobs.JobNotFound as exc:
        if len(job) < 32:
            fail(str(exc))
    except Exception:
        # The stack may be gone while its log files remain: a whole id still works.
        if len(job) < 32:
            fail(f"cannot look up job {job!r}: give the whole id to read the logs alone")
    if target.local:
        assert target.log_dir is not None
        if not target.log_dir.is_dir():
            fail(f"no log directory {target.log_dir} (--log-dir, or BYOM_LOG_DIR)", EXIT_USAGE)
        lines = joblogs.from_files(target.log_dir, job_id)
    else:
        if not target.log_groups:
            fail("the stack has no LogGroupNames output; update it", EXIT_USAGE)
        start = (found.created_at if found else datetime.now(UTC) - timedelta(days=7)) - timedelta(
            minutes=1
        )
        events = joblogs.cloudwatch_events(target.client("logs"), target.log_groups, job_id, start)
        lines = joblogs.from_events(events, job_id)
    if not lines:
        fail(f"no log lines for job {job_id}")
    out = views.console()
    for line in lines:
        if json_lines:
            print(detail_json(line.record))
        else:
            out.print(views.log_line(line))
