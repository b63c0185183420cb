"""The byom command against the real local stack, run as a user runs it (a subprocess).

One stack for the module: small chunks and no inline path, so a file of a
thousand rows is several chunks scored by local Batch children, and its job
has lines from ingest, the scheduler, the workers and status.
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from cli import jobs
from cli.target import local_target
from infra.local.processes import free_port, wait_until
from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from services.ingest.ingest import Upload, retry_job_id
from shared import naming
from shared.schemas import JobItem, JobState
from tests.features import write_feature_csv

pytestmark = pytest.mark.integration

ROWS = 1000
PROGRESS = re.compile(r"^(\w+)\s+(\d+)/(\d+) chunks\s+([\d.]+)%")


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("cli-stack-logs"),
        settings={"BYOM_CHUNK_BYTES": str(64 * 1024), "BYOM_INLINE_MAX_BYTES": "0"},
    )
    with LocalStack(config) as stack:
        yield stack


def cli_env() -> dict[str, str]:
    # No credentials or endpoint of the caller's: the command must find its own way.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BYOM_"))}


def byom(stack, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "cli",
        "--endpoint-url", stack.endpoint_url, "--log-dir", str(stack.log_dir), *args,
    ]  # fmt: skip


def run(stack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        byom(stack, *args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@dataclass(frozen=True)
class Submitted:
    path: str
    job_id: str
    result: subprocess.CompletedProcess[str]


def submit_wait(stack, path, *extra: str) -> Submitted:
    result = run(stack, "submit", str(path), "--wait", "--timeout", "240", *extra)
    found = re.search(r"^job ([0-9a-f]{32})$", result.stdout, re.MULTILINE)
    assert found, result.stdout + result.stderr
    return Submitted(str(path), found.group(1), result)


@pytest.fixture(scope="module")
def good(stack, tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "thousand.csv"
    buffer = io.StringIO()
    write_feature_csv(generate(ROWS, seed=5), buffer)
    path.write_text(buffer.getvalue())
    assert path.stat().st_size > 3 * 64 * 1024  # several chunks
    return submit_wait(stack, path, "--meta", "owner=cli-test")


@pytest.fixture(scope="module")
def bad(stack, tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "short-row.csv"
    path.write_bytes(b"1,2,3\n")
    return submit_wait(stack, path)


def test_submit_wait_shows_progress_to_100_percent_and_succeeds(stack, good):
    result = good.result
    assert result.returncode == 0, result.stdout + result.stderr
    progress = [PROGRESS.match(line) for line in result.stdout.splitlines()]
    steps = [
        (m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))) for m in progress if m
    ]
    assert steps, result.stdout
    percents = [percent for _, _, _, percent in steps]
    assert percents == sorted(percents), result.stdout
    state, done, total, percent = steps[-1]
    assert (state, percent) == ("SUCCEEDED", 100.0) and done == total > 1, result.stdout
    assert f"{ROWS:,} rows" in result.stdout
    output = re.search(r"^output  s3://byom-local/(output/\S+\.csv)$", result.stdout, re.MULTILINE)
    assert output, result.stdout
    body = stack.client("s3").get_object(Bucket="byom-local", Key=output.group(1))["Body"].read()
    assert body.count(b"\n") == ROWS
    head = stack.client("s3").head_object(Bucket="byom-local", Key="input/thousand.csv")
    assert head["Metadata"] == {"owner": "cli-test"}


def test_submit_wait_exits_non_zero_with_the_error_for_a_failed_job(bad):
    result = bad.result
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"job {bad.job_id} FAILED" in result.stderr
    assert "input/short-row.csv, line 1, column 4" in result.stderr


def test_status_lists_jobs_and_shows_one(stack, good, bad):
    table = run(stack, "status")
    assert table.returncode == 0, table.stderr
    for submitted, state in ((good, "SUCCEEDED"), (bad, "FAILED")):
        row = next(line for line in table.stdout.splitlines() if submitted.job_id in line)
        assert state in row, table.stdout
    assert "1,000" in table.stdout

    detail = run(stack, "status", good.job_id[:8])
    assert detail.returncode == 0, detail.stderr
    assert good.job_id in detail.stdout
    assert re.search(r"output\s+s3://byom-local/output/\S+-thousand\.csv", detail.stdout)

    items = [json.loads(line) for line in run(stack, "status", "--json").stdout.splitlines()]
    states = {item["job_id"]: item["state"] for item in items}
    assert states[good.job_id] == "SUCCEEDED" and states[bad.job_id] == "FAILED"

    missing = run(stack, "status", "ffffffffffff")
    assert missing.returncode == 1 and "no job" in missing.stderr


def rule_names(events) -> set[str]:
    return {rule["Name"] for rule in events.list_rules(EventBusName="byom-events")["Rules"]}


def next_line(lines: queue.Queue[str]) -> str:
    try:
        return lines.get(timeout=1)
    except queue.Empty:
        return ""


def _lines(stream, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_events_follow_prints_done_events_and_removes_its_subscription(stack, tmp_path):
    events, sqs = stack.client("events"), stack.client("sqs")
    process = subprocess.Popen(
        byom(stack, "events", "--follow", "--json"), cwd=REPO, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(stream, into), daemon=True)
        for stream, into in ((process.stdout, out), (process.stderr, err))
    ]
    for reader in readers:
        reader.start()
    try:
        said: list[str] = []

        def listening() -> bool:
            said.append(next_line(err))
            return "listening" in said[-1]

        wait_until(listening, timeout=60, what="byom events --follow")
        name = re.search(r"rule and queue ([\w-]+)", said[-1]).group(1)
        assert name in rule_names(events)
        assert events.list_targets_by_rule(Rule=name, EventBusName="byom-events")["Targets"]

        for key in ("input/followed-1.csv", "input/followed-2.csv"):
            stack.client("s3").upload_file(str(REPO / "model/sample/sample.csv"), "byom-local", key)
        uris = {"s3://byom-local/input/followed-1.csv", "s3://byom-local/input/followed-2.csv"}
        seen: dict[str, dict] = {}

        def both_seen() -> bool:
            line = next_line(out)
            if line:
                detail = json.loads(line)
                seen[detail["input_uri"]] = detail
            return uris <= seen.keys()

        wait_until(both_seen, timeout=120, what="two done events")
        assert {seen[uri]["status"] for uri in uris} == {"SUCCEEDED"}
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        for reader in readers:
            reader.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    assert code == 0
    assert "removed rule and queue" in "".join(list(err.queue))
    assert name not in rule_names(events)
    assert not sqs.list_queues(QueueNamePrefix=name).get("QueueUrls")


def test_logs_gives_every_services_lines_for_one_job_in_time_order(stack, good, bad):
    result = run(stack, "logs", good.job_id, "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["job_id"] for r in records} == {good.job_id}
    services = {r["service"] for r in records}
    expected = {"byom-ingest", "byom-scheduler", "byom-inference-worker", "byom-status"}
    assert expected <= services, services
    assert any("chunk_index" in r for r in records if r["service"] == "byom-inference-worker")
    assert all(len(r.get("trace_id", "")) == 32 for r in records), records
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)

    plain = run(stack, "logs", good.job_id[:10])
    assert plain.returncode == 0, plain.stderr
    assert "job finished" in plain.stdout and "chunk scored" in plain.stdout
    assert bad.job_id not in plain.stdout


def test_up_passes_its_options_to_the_local_stack():
    result = subprocess.run(
        [sys.executable, "-m", "cli", "up", "--help"], cwd=REPO, env=cli_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--model-dir" in result.stdout and "--log-dir" in result.stdout


STACK_TEMPLATE = """
Resources:
  Marker:
    Type: AWS::SQS::Queue
    Properties: {QueueName: byom-cli-stack-marker}
Outputs:
  DataBucketName: {Value: byom-local}
  JobsTableName: {Value: byom-jobs}
  EventBusName: {Value: byom-events}
  Region: {Value: us-east-1}
  LogGroupNames: {Value: "/byom-test/ingest,/byom-test/worker"}
"""


def test_a_deployed_stack_gives_the_names_and_its_log_groups_the_lines(stack, good):
    """--stack: names from CloudFormation outputs, logs from CloudWatch Logs (moto's)."""
    stack.client("cloudformation").create_stack(StackName="byom-cli", TemplateBody=STACK_TEMPLATE)
    logs = stack.client("logs")
    now = int(time.time() * 1000)
    lines = {
        "/byom-test/ingest": [(now, "ingest", good.job_id), (now + 30, "ingest", "f" * 32)],
        "/byom-test/worker": [(now + 10, "byom-inference-worker", good.job_id)],
    }
    for group, events in lines.items():
        logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName="s")
        logs.put_log_events(
            logGroupName=group, logStreamName="s",
            logEvents=[
                {"timestamp": at, "message": json.dumps({
                    "level": "INFO", "message": f"from {service}", "service": service,
                    "job_id": job_id, "timestamp": f"{at}",
                })}
                for at, service, job_id in events
            ],
        )  # fmt: skip
    env = cli_env() | {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    def on_stack(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cli", "--stack", "byom-cli", "--region", "us-east-1",
                   "--endpoint-url", stack.endpoint_url, *args]  # fmt: skip
        return subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )

    status = on_stack("status", "--json")
    assert status.returncode == 0, status.stderr
    assert good.job_id in {json.loads(line)["job_id"] for line in status.stdout.splitlines()}

    found = on_stack("logs", good.job_id)
    assert found.returncode == 0, found.stderr
    assert [line.split()[-1] for line in found.stdout.splitlines()] == [
        "ingest", "byom-inference-worker"
    ]  # fmt: skip

    missing = subprocess.run(
        [sys.executable, "-m", "cli", "--stack", "no-such-stack", "--region", "us-east-1",
         "--endpoint-url", stack.endpoint_url, "status"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no-such-stack" in missing.stderr


def test_the_job_of_an_upload_is_named_as_ingest_names_it(stack):
    """The same bytes uploaded again after a FAILED job are a retry, with an id of its own."""
    target = local_target(stack.endpoint_url, log_dir=stack.log_dir)
    uploaded = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    base = naming.job_id_for("byom-local", "input/retried.csv", "e1")
    assert jobs.job_id_for_upload(target, "input/retried.csv", "e1", uploaded) == base
    failed = JobItem(
        job_id=base, state=JobState.FAILED, bucket="byom-local", input_key="input/retried.csv",
        input_etag="e1", input_size=1, input_last_modified=uploaded, output_key="output/r.csv",
        created_at=uploaded, updated_at=uploaded, deadline_epoch=0, expires_at=0,
    )  # fmt: skip
    assert jobs.store(target).create(failed)
    assert jobs.job_id_for_upload(target, "input/retried.csv", "e1", uploaded) == base
    later = uploaded + timedelta(seconds=1)
    retry = retry_job_id(base, Upload("byom-local", "input/retried.csv", "e1", 1, {}, later))
    assert jobs.job_id_for_upload(target, "input/retried.csv", "e1", later) == retry != base


def test_no_stack_to_talk_to_is_one_line_that_says_so():
    closed = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "cli", "--endpoint-url", closed, "status"], cwd=REPO,
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot reach {closed}/: is the local stack up (make up, or byom up)?"
    )
