"""The byom command prints keys, errors and log lines as the plain text they are.

Object keys, error messages and log records come from uploads and from the services,
so none of it is Rich markup: ``[/]`` must not crash a table, ``[link=...]`` must
not become a link, and a terminal escape sequence in a key must not reach the
terminal (it is shown escaped, as ``\\x1b``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import jobs, views
from cli import main as cli_main
from cli.joblogs import LogLine
from cli.progress import show_result
from cli.target import local_target
from cli.where import Where
from shared.schemas import JobItem, JobState

HOSTILE = "input/a[/]b [link=http://x]y[/link] [bold]z \x1b[31mred\x1b[0m \x07 \u202eevil.csv"
HOSTILE_ERROR = "model said [/] [link=http://x]y[/link] \x1b]8;;http://x\x1b\\click\x1b]8;;\x1b\\"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _job(state: JobState = JobState.FAILED) -> JobItem:
    return JobItem(
        job_id="0123456789abcdef0123456789abcdef",
        state=state,
        bucket="byom-local",
        input_key=HOSTILE,
        input_etag='"e"',
        input_size=10,
        output_key="output/[/]x.csv",
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        deadline_epoch=0,
        expires_at=0,
        error=HOSTILE_ERROR,
        model_name="m[/]",
    )


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = local_target("http://127.0.0.1:1", region="us-east-1", log_dir=tmp_path)
    monkeypatch.setattr(Where, "target", lambda self: target)
    monkeypatch.setattr(jobs, "recent", lambda target, limit: [_job()])
    monkeypatch.setattr(jobs, "find", lambda target, job: _job())


def _assert_literal(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "[/]" in output
    assert "[link=http://x]y[/link]" in output
    assert "\\x1b[31mred" in output


@pytest.mark.parametrize("args", [["status"], ["status", "0123456789ab"]])
def test_status_prints_hostile_keys_and_errors_literally(fake_jobs: None, args: list[str]) -> None:
    result = CliRunner().invoke(cli_main.app, args, env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    _assert_literal(result.output)


def test_a_failed_job_s_error_is_printed_literally(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        show_result(_job())
    err = capsys.readouterr().err
    assert "[link=http://x]y[/link]" in err and "[/]" in err
    assert "\x1b" not in err


def test_event_lines_and_log_lines_carry_no_control_characters() -> None:
    console = views.console()
    with console.capture() as captured:
        console.print(
            views.event_line(
                {"status": "FAILED", "job_id": "j", "input_uri": HOSTILE, "error": HOSTILE_ERROR}
            )
        )
        line = LogLine(NOW, 0, "ingest", {"message": HOSTILE, "level": "INFO", "key": HOSTILE})
        console.print(views.log_line(line))
    _assert_literal(captured.get())


def test_plain_text_escapes_controls_and_keeps_the_rest() -> None:
    assert views.plain("a\x1b[31mb\tc\u202e").plain == "a\\x1b[31mb\tc\\u202e"
    assert views.plain("[bold]x[/]").plain == "[bold]x[/]"
    assert views.plain("héllo, 世界").plain == "héllo, 世界"
