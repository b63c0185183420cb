"""The byom command's pure parts: metadata, keys, progress, targets, log lines, packaging."""

from __future__ import annotations

import json
import logging
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import import_module, metadata
from pathlib import Path

import pytest
import typer

from cli import joblogs, submit
from cli.target import TargetError, from_outputs, local_target
from shared import logs
from shared.lambda_sqs import job_keys_of
from shared.schemas import BadRows, JobItem, JobState

REPO = Path(__file__).resolve().parents[2]


def test_the_console_script_is_the_typer_app():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["byom"].partition(":")
    assert isinstance(getattr(import_module(module), name), typer.Typer)
    installed = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "byom"]
    for entry_point in installed:  # where the venv has byom installed (make venv)
        assert entry_point.value == scripts["byom"]


def test_packages_are_found_for_the_build():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in ("cli", "services", "shared", "model", "infra"):
        assert f"{package}*" in include
        assert (REPO / package / "__init__.py").is_file()


def test_metadata_is_what_ingest_reads():
    assert submit.metadata(
        model="fraud:2", on_bad_rows=BadRows.SKIP, max_bad_rows=5, meta=["Owner=me", "x=a=b"]
    ) == {
        "owner": "me",
        "x": "a=b",
        "byom-model": "fraud:2",
        "byom-on-bad-rows": "skip",
        "byom-max-bad-rows": "5",
    }
    assert submit.metadata() == {}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"meta": ["novalue"]}, "--meta 'novalue': use KEY=VALUE"),
        ({"meta": ["=v"]}, "--meta '=v'"),
        ({"meta": ["bad key=v"]}, "HTTP header name"),
        ({"meta": ["k=café"]}, "printable ASCII"),
        ({"model": "  "}, "--model"),
        ({"max_bad_rows": -2}, "--max-bad-rows"),
    ],
)
def test_bad_settings_are_named(kwargs, named):
    with pytest.raises(submit.SubmitError) as error:
        submit.metadata(**kwargs)
    assert named in str(error.value)


def test_input_key():
    target = local_target()
    assert submit.input_key(target, Path("/tmp/a.csv"), None) == "input/a.csv"
    assert submit.input_key(target, Path("a.csv"), "team/b.csv") == "input/team/b.csv"
    assert submit.input_key(target, Path("a.csv"), "input/c.csv") == "input/c.csv"
    with pytest.raises(submit.SubmitError, match="not a folder"):
        submit.input_key(target, Path("a.csv"), "team/")


def job(**changes) -> JobItem:
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    values = {
        "job_id": "a" * 32, "state": JobState.RUNNING, "bucket": "b", "input_key": "input/x.csv",
        "input_etag": "e", "input_size": 10, "output_key": "output/x.csv",
        "created_at": created, "updated_at": created, "deadline_epoch": 0, "expires_at": 0,
        "chunk_count": 4, "chunks_done": 1, "rows": 1000,
    }  # fmt: skip
    return JobItem.model_validate(values | changes)


def test_progress_line_rate_and_eta():
    now = datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC)
    progress = submit.progress_of(job(), now)
    assert progress.fraction == 0.25
    assert progress.rows_per_second == 100
    assert progress.eta_seconds == 30  # 10 s a chunk, three to go
    assert progress.line().startswith("RUNNING   1/4 chunks  25.0%  1,000 rows  100 rows/s")
    done = submit.progress_of(
        job(state=JobState.SUCCEEDED, chunks_done=4, finished_at=now), now + timedelta(hours=1)
    )
    assert done.eta_seconds is None and done.elapsed == 10
    assert "100.0%" in done.line()
    assert submit.progress_of(job(chunk_count=0, chunks_done=0), now).fraction == 0


def test_a_stack_without_byoms_outputs_is_named():
    with pytest.raises(TargetError, match="JobsTableName, EventBusName"):
        from_outputs({"DataBucketName": "b"}, region="eu-west-1", endpoint_url=None)
    target = from_outputs(
        {
            "DataBucketName": "b", "JobsTableName": "t", "EventBusName": "e",
            "Region": "eu-west-1", "LogGroupNames": "/aws/lambda/x,/aws/batch/y",
        },
        region="us-east-1", endpoint_url=None,
    )  # fmt: skip
    assert (target.region, target.bucket, target.local) == ("eu-west-1", "b", False)
    assert target.log_groups == ("/aws/lambda/x", "/aws/batch/y")


def record(service: str, stamp: str, job_id: str = "j1", **extra) -> str:
    return json.dumps({"level": "INFO", "message": "m", "timestamp": stamp,
                       "service": service, "job_id": job_id, **extra})  # fmt: skip


def test_lines_of_one_job_from_every_file_in_time_order(tmp_path):
    (tmp_path / "ingest.log").write_text(
        "2026-12-01 12:00:00 poller started\n"
        + record("byom-ingest", "2026-12-01 12:00:01,100+0000") + "\n"
        + record("byom-ingest", "2026-12-01 12:00:01,200+0000", job_id="j2") + "\n"
    )  # fmt: skip
    (tmp_path / "batch.log").write_text(
        record("byom-inference-worker", "2026-12-01 12:00:02,000+0000", chunk_index=3) + "\n"
        + "not json mentioning j1\n"
        + record("byom-inference-worker", "2026-12-01 12:00:01,150+0000") + "\n"
    )  # fmt: skip
    (tmp_path / "notes.txt").write_text(record("x", "2026-12-01 12:00:00,000+0000"))
    lines = joblogs.from_files(tmp_path, "j1")
    assert [(line.service, line.time.microsecond) for line in lines] == [
        ("byom-ingest", 100_000),
        ("byom-inference-worker", 150_000),
        ("byom-inference-worker", 0),
    ]
    assert lines[-1].render().startswith("12:00:02.000 byom-inference-worker    INFO    m chunk=3")


def test_cloudwatch_events_to_lines():
    events = [
        ("/aws/lambda/byom-dev-status", {"timestamp": 2000, "message": record("s", "bad time")}),
        ("/aws/batch/byom-dev-worker", {"timestamp": 1000, "message": "plain j1 text"}),
        ("/aws/lambda/byom-dev-ingest", {"timestamp": 500,
                                         "message": record("i", "2026-12-01T12:00:00.5+00:00")}),
    ]  # fmt: skip
    lines = joblogs.from_events(events, "j1")
    assert [line.service for line in lines] == ["s", "i"]  # 1970 before 2026
    assert lines[0].time == datetime.fromtimestamp(2, UTC)


def test_job_keys_are_on_every_line_of_their_scope(capsys, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    logs.configure("byom-test")
    log = logging.getLogger("byom.test")
    with logs.job_scope():
        logs.append_job_keys("j1")
        log.info("one")
        logs.append_job_keys(chunk_index=2)
        log.info("two")
    log.info("after")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["message"], r.get("job_id"), r.get("chunk_index")) for r in lines] == [
        ("one", "j1", None),
        ("two", "j1", 2),
        ("after", None, None),
    ]


def test_the_job_a_message_names_goes_on_its_lines():
    done = '{"version": 1, "job_id": "j1", "chunk_index": 3, "attempt": 1, "rows": 5}'
    assert job_keys_of(done) == {"job_id": "j1", "chunk_index": 3}
    assert job_keys_of('{"job_id": "j2", "chunk_count": 4, "plan_key": "p"}') == {"job_id": "j2"}
    for body in ('{"source": "aws.s3", "detail": {}}', "[1]", "not json", '{"job_id": 7}'):
        assert job_keys_of(body) == {}


def test_piped_messages_are_never_broken_mid_line(capsys):
    from cli.views import console

    message = "error: " + "x" * 150 + " " + "y" * 150
    console(stderr=True).print(message)
    assert capsys.readouterr().err == message + "\n"
