"""The local poller cuts a handler off at its timeout, as Lambda does, in a real process.

The handlers below run inside the poller's runtime process; they note what they
do in a journal file so the test can see which records started and finished.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from infra.local import resources
from infra.local.processes import Service, wait_until
from infra.local.stack import REPO
from infra.local.stack_config import HANDLERS
from services.ingest.ingest import handle_upload
from shared.lambda_sqs import LambdaHandler, sqs_handler
from shared.schemas import S3ObjectCreatedEvent

pytestmark = pytest.mark.integration

REGION = "us-east-1"
JOURNAL = "BYOM_TEST_JOURNAL"


def _note(line: str) -> None:
    with Path(os.environ[JOURNAL]).open("a") as journal:
        journal.write(line + "\n")


def _process(body: str) -> None:
    name = json.loads(body)["name"]
    _note(f"start {name}")
    if name.startswith("slow"):
        time.sleep(600)  # far past any timeout here
    _note(f"end {name}")


def _ingest(body: str) -> None:
    """The real ingest, with one upload made slow (a huge file, a slow S3)."""
    event = S3ObjectCreatedEvent.model_validate_json(body)
    _note(f"start {event.detail.object.key}")
    if "slow" in event.detail.object.key:
        time.sleep(600)
    handle_upload(event)
    _note(f"end {event.detail.object.key}")


def _lazy(process: Any) -> LambdaHandler:
    """Built on first use, so that importing this module configures no logging."""
    built: list[LambdaHandler] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        if not built:
            built.append(sqs_handler("byom-test", process))
        return built[0](event, context)

    return handler


handler = _lazy(_process)
ingest_handler = _lazy(_ingest)


def journal(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def poller(
    tmp_path: Path, env: dict[str, str], queue_url: str, handler: str, *, timeout: int, batch: int
) -> Service:
    return Service(
        name="poller",
        command=[
            sys.executable, "-m", "infra.local.poller", "--queue-url", queue_url,
            "--handler", handler, "--function-name", "byom-test",
            "--timeout-seconds", str(timeout), "--batch-size", str(batch),
        ],
        env=env,
        log_path=tmp_path / "poller.log",
        cwd=REPO,
    )  # fmt: skip


def aws_env(moto_endpoint: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        JOURNAL: str(tmp_path / "journal.txt"),
    }


def queue_with_dlq(sqs: Any, name: str, *, visibility: int) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    redrive = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": 2}
    queue = sqs.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    return queue, dlq


def count(sqs: Any, queue_url: str) -> int:
    """Messages in a queue, visible or not, without receiving (which would count)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(attributes["Attributes"][name]) for name in names)


def bodies_in(sqs: Any, queue_url: str) -> list[str]:
    """The bodies of a queue nobody consumes (each read once, at the end)."""
    found = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    return [message["Body"] for message in found]


def test_a_handler_past_its_timeout_is_cut_off_and_its_batch_redelivered(
    moto_endpoint: str, tmp_path: Path
) -> None:
    sqs = resources.client("sqs", moto_endpoint, REGION)
    queue, dlq = queue_with_dlq(sqs, "poller-timeout", visibility=3)
    for name in ("fast", "slow"):  # one batch: the fast record finishes first
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"name": name}))
    service = poller(
        tmp_path, aws_env(moto_endpoint, tmp_path), queue,
        "tests.integration.test_poller_timeout:handler", timeout=2, batch=10,
    )  # fmt: skip
    service.start()
    try:
        # Both reach the DLQ: the slow record never finishes, and Lambda returns
        # the whole batch of a timed-out invocation, finished records included.
        wait_until(lambda: count(sqs, dlq) == 2, timeout=90, what="both in the DLQ")
        service.check_alive()
    finally:
        service.stop()
    lines = journal(tmp_path / "journal.txt")
    assert lines.count("start slow") == 2 and "end slow" not in lines
    assert lines.count("end fast") == 2
    assert "Task timed out after 2 seconds" in service.tail(200)


def test_a_slow_upload_does_not_fail_an_unrelated_one(
    own_moto_endpoint: str, tmp_path: Path
) -> None:
    """Ingest's batch size from the local stack (the template's), a short timeout."""
    bucket = "poller-uploads"
    made = resources.bootstrap(
        own_moto_endpoint, REGION, bucket=bucket, jobs_table=bucket, event_bus=bucket,
        prefix=bucket, visibility_timeout=9, max_receive_count=2,
    )  # fmt: skip
    s3 = resources.client("s3", own_moto_endpoint, REGION)
    sqs = resources.client("sqs", own_moto_endpoint, REGION)
    rows = b"".join(b",".join([b"0.5"] * 30) + b"\n" for _ in range(5))
    for key in ("input/slow.csv", "input/fast.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=rows)
    ingest_queue = made.queue_urls["ingest"]
    # Both waiting before the poller starts, so that one receive could take both.
    wait_until(lambda: count(sqs, ingest_queue) == 2, timeout=30, what="both upload events")
    env = aws_env(own_moto_endpoint, tmp_path) | {
        "BYOM_BUCKET": bucket,
        "BYOM_JOBS_TABLE": bucket,
        "BYOM_EVENT_BUS": bucket,
        "BYOM_SCHEDULER_QUEUE_URL": made.queue_urls["scheduler"],
        "BYOM_STATUS_QUEUE_URL": made.queue_urls["status"],
    }
    service = poller(
        tmp_path, env, ingest_queue, "tests.integration.test_poller_timeout:ingest_handler",
        # Room for the real ingest's first, cold run on a busy machine.
        timeout=8, batch=HANDLERS["ingest"].batch_size,
    )  # fmt: skip
    service.start()
    try:
        dlq = made.dlq_urls["ingest"]
        wait_until(lambda: count(sqs, dlq) > 0, timeout=90, what="the slow one in the DLQ")
        service.check_alive()
    finally:
        service.stop()
    dead = [json.loads(body)["detail"]["object"]["key"] for body in bodies_in(sqs, dlq)]
    assert dead == ["input/slow.csv"]
    lines = journal(tmp_path / "journal.txt")
    assert lines.count("end input/fast.csv") == 1  # scored once, never redelivered
    dynamodb = resources.client("dynamodb", own_moto_endpoint, REGION)
    jobs = dynamodb.scan(TableName=bucket)["Items"]
    states = {item["input_key"]["S"]: item["state"]["S"] for item in jobs if "state" in item}
    assert states == {"input/fast.csv": "ACCEPTED"}
    assert len(bodies_in(sqs, made.queue_urls["scheduler"])) == 1
