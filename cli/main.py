"""byom: run the local stack, submit files, watch jobs, done events and logs.

Locally it points at make up's stack (--endpoint-url, default
http://127.0.0.1:4566); with --stack NAME at a deployed stack on AWS, whose
CloudFormation outputs give every name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from cli import job_commands, transform, views, watch_commands
from cli.exits import EXIT_FAILED
from cli.target import LOCAL_ENDPOINT
from cli.where import Where


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


def up(ctx: typer.Context) -> None:
    """Run the local stack in the foreground, as make up does (its options: byom up --help)."""
    command = [sys.executable, "-m", "infra.local.up", *ctx.args]
    # Replace this process: Ctrl-C and SIGTERM reach the stack's own handlers.
    os.execv(sys.executable, command)


# Every command, in the order --help lists them.
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(up)
app.command("submit")(job_commands.submit_command)
app.command()(job_commands.status)
app.command()(job_commands.cancel)
app.command()(job_commands.retry)
app.command()(watch_commands.events)
app.command()(watch_commands.logs)
