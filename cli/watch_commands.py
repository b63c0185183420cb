"""byom events and byom logs: what jobs announce (done events) and log, as it comes.

main.py registers them on the app.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli import follow, joblogs, jobs, views
from cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, fail
from cli.where import target_of
from shared.schemas import JobItem


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
    target = target_of(ctx)
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


def logs(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job id (or a prefix of one).")],
    json_lines: Annotated[
        bool, typer.Option("--json", help="Print the log records as JSON lines.")
    ] = False,
) -> None:
    """Every service's log lines for one job, in time order."""
    target = target_of(ctx)
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
