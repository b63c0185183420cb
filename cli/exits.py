"""How a byom command ends: its exit statuses, and :func:`fail` with one error line."""

from __future__ import annotations

from typing import NoReturn

import typer

from cli import views

EXIT_FAILED = 1  # the job FAILED
EXIT_USAGE = 2  # a setting is wrong (as click's own usage errors)
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    views.console(stderr=True).print(views.error_line(message))
    raise typer.Exit(code)
