"""Uploading the same bytes again, end to end through the local stack.

The job id is a hash of bucket, key and ETag, so the same bytes under the same
key land on the same job. After a FAILED job that is no dead end: a later
upload of those bytes (a new S3 LastModified) is a retry with a job of its own,
which may succeed (the failure was the policy's, or transient) or fail again
for the same reason. A duplicate event of the failed upload is not a retry,
and a re-upload of a SUCCEEDED file makes no new job at all.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from shared.naming import NAME_CLAIM_PREFIX, job_id_for
from tests.features import write_feature_csv
from tests.integration.helpers import job_item, keys_under, with_cell

pytestmark = pytest.mark.integration

Event = dict[str, Any]


@pytest.fixture(scope="module")
def stack(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(model_dir=model_dir, log_dir=tmp_path_factory.mktemp("reupload-logs"))
    with LocalStack(config) as stack:
        yield stack


class DoneEvents:
    """Every done event the stack sends, kept: one input URI may end several jobs."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.sqs = stack.client("sqs")
        self.queue = stack.subscribe_done_events("reupload-done-events")
        self.seen: list[Event] = []

    def wait_for(self, match: Callable[[Event], bool], what: str, timeout: float = 120) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [event for event in self.seen if match(event)]
            if found:
                return found[0]
            response = self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in response.get("Messages", []):
                self.seen.append(json.loads(message["Body"])["detail"])
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        print(self.stack.logs(40))
        raise TimeoutError(f"no done event for {what} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def done(stack: LocalStack) -> DoneEvents:
    return DoneEvents(stack)


@pytest.fixture(scope="module")
def aws(stack: LocalStack) -> dict[str, Any]:
    return {name: stack.client(name) for name in ("s3", "sqs", "dynamodb")}


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def jobs_of(aws: dict[str, Any], table: str, key: str) -> dict[str, dict[str, Any]]:
    """The job items of one input key, by job id; name claims are not jobs."""
    items = aws["dynamodb"].scan(TableName=table, ConsistentRead=True)["Items"]
    return {
        item["job_id"]["S"]: job_item(aws["dynamodb"], table, item["job_id"]["S"])
        for item in items
        if not item["job_id"]["S"].startswith(NAME_CLAIM_PREFIX)
        and item.get("input_key", {}).get("S") == key
    }


def outputs_named(aws: dict[str, Any], bucket: str, suffix: str) -> list[str]:
    return [key for key in keys_under(aws["s3"], bucket, "output/") if key.endswith(suffix)]


def ingest_log(stack: LocalStack, message: str, job_id: str) -> list[dict[str, Any]]:
    """The ingest function's log entries with ``message`` for ``job_id``."""
    entries = []
    for line in (stack.log_dir / "ingest.log").read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{job_id}"' in line:
            entry = json.loads(line)
            if entry.get("message") == message and entry.get("job_id") == job_id:
                entries.append(entry)
    return entries


def wait_past_the_second_of(job: dict[str, Any]) -> None:
    """S3 keeps LastModified to the second: an upload within the same second as the
    first is indistinguishable from a duplicate event of it, so let that second end."""
    uploaded = datetime.fromisoformat(job["input_last_modified"])
    wait_until(
        lambda: datetime.now(UTC).replace(microsecond=0) > uploaded,
        timeout=5,
        what="the next second",
    )


def send_upload_event_again(stack: LocalStack, aws: dict[str, Any], key: str) -> None:
    """What S3 sends for ``key`` as it is now, delivered once more to ingest's queue."""
    bucket = stack.config.bucket
    head = aws["s3"].head_object(Bucket=bucket, Key=key)
    event = {
        "version": "0",
        "id": "duplicate-delivery",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": datetime.now(UTC).isoformat(),
        "region": stack.config.region,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": head["ContentLength"],
                "etag": head["ETag"].strip('"'),
            },
        },
    }
    assert stack.resources is not None
    queue = stack.resources.queue_urls["ingest"]
    aws["sqs"].send_message(QueueUrl=queue, MessageBody=json.dumps(event))


def wait_for_duplicate(stack: LocalStack, job_id: str, seen_before: int) -> dict[str, Any]:
    """Until ingest has taken one more event for ``job_id`` as a duplicate; that entry."""
    wait_until(
        lambda: len(ingest_log(stack, "duplicate upload event", job_id)) > seen_before,
        timeout=60,
        what=f"ingest taking the event for {job_id} as a duplicate",
    )
    return ingest_log(stack, "duplicate upload event", job_id)[seen_before]


def test_a_failed_upload_uploaded_again_is_a_new_job_that_can_succeed(
    stack: LocalStack, done: DoneEvents, aws: dict[str, Any]
) -> None:
    s3, bucket, table = aws["s3"], stack.config.bucket, stack.config.jobs_table
    key = "input/reupload/over-the-limit.csv"
    uri = f"s3://{bucket}/{key}"
    body = with_cell(feature_csv(40, seed=51), 7, 4, b"abc")
    first_put = s3.put_object(
        Bucket=bucket, Key=key, Body=body,
        Metadata={"byom-on-bad-rows": "skip", "byom-max-bad-rows": "0"},
    )  # fmt: skip
    failed = done.wait_for(lambda e: e["input_uri"] == uri, key)
    assert failed["status"] == "FAILED", failed
    assert "over the limit of 0" in failed["error"], failed["error"]
    first_id = failed["job_id"]
    assert first_id == job_id_for(bucket, key, first_put["ETag"])
    first = job_item(aws["dynamodb"], table, first_id)
    assert first["input_last_modified"]

    # A duplicate delivery of that upload's event is not a retry.
    send_upload_event_again(stack, aws, key)
    assert wait_for_duplicate(stack, first_id, 0)["state"] == "FAILED"
    assert set(jobs_of(aws, table, key)) == {first_id}

    # The same bytes again, a second later, with a limit the file is within.
    wait_past_the_second_of(first)
    second_put = s3.put_object(
        Bucket=bucket, Key=key, Body=body,
        Metadata={"byom-on-bad-rows": "skip", "byom-max-bad-rows": "5"},
    )  # fmt: skip
    assert second_put["ETag"] == first_put["ETag"]  # so the same job id as before
    retried = done.wait_for(
        lambda e: e["input_uri"] == uri and e["job_id"] != first_id, f"the retry of {key}"
    )
    assert retried["status"] == "SUCCEEDED", retried
    assert (retried["rows"], retried["bad_rows"]) == (40, 1)
    retry_id = retried["job_id"]

    jobs = jobs_of(aws, table, key)
    assert set(jobs) == {first_id, retry_id}
    assert jobs[first_id]["state"] == "FAILED" and jobs[first_id]["error"] == failed["error"]
    assert jobs[retry_id]["state"] == "SUCCEEDED"
    assert jobs[retry_id]["input_last_modified"] > jobs[first_id]["input_last_modified"]
    output_key = retried["output_uri"].removeprefix(f"s3://{bucket}/")
    # (The retry may carry a job-id suffix: its name was claimed in the same
    # second as the failed job's, which keeps its claim.)
    produced = [k for k in keys_under(s3, bucket, "output/") if "-reupload_over-the-limit" in k]
    assert produced == [output_key]
    assert jobs[first_id]["output_key"] != output_key
    lines = s3.get_object(Bucket=bucket, Key=output_key)["Body"].read().split(b"\n")[:-1]
    assert len(lines) == 40 and [i + 1 for i, line in enumerate(lines) if not line] == [7]

    # The first upload's event, delivered once more now, finds the retry: no third job.
    send_upload_event_again(stack, aws, key)
    assert wait_for_duplicate(stack, retry_id, 0)["state"] == "SUCCEEDED"
    assert set(jobs_of(aws, table, key)) == {first_id, retry_id}
    # (The retry may carry a job-id suffix: its name was claimed in the same
    # second as the failed job's, which keeps its claim.)
    produced = [k for k in keys_under(s3, bucket, "output/") if "-reupload_over-the-limit" in k]
    assert produced == [output_key]


def test_a_bad_file_uploaded_again_fails_again_for_the_same_reason(
    stack: LocalStack, done: DoneEvents, aws: dict[str, Any]
) -> None:
    s3, bucket, table = aws["s3"], stack.config.bucket, stack.config.jobs_table
    key = "input/reupload/non-numeric.csv"
    uri = f"s3://{bucket}/{key}"
    body = with_cell(feature_csv(30, seed=52), 12, 9, b"twelve")
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    failed = done.wait_for(lambda e: e["input_uri"] == uri, key)
    assert failed["status"] == "FAILED", failed
    assert failed["error"] == f"{uri}, line 12, column 9: 'twelve' is not a number"

    wait_past_the_second_of(job_item(aws["dynamodb"], table, failed["job_id"]))
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    again = done.wait_for(
        lambda e: e["input_uri"] == uri and e["job_id"] != failed["job_id"], f"the retry of {key}"
    )
    assert again["status"] == "FAILED" and again["error"] == failed["error"]
    assert set(jobs_of(aws, table, key)) == {failed["job_id"], again["job_id"]}
    assert outputs_named(aws, bucket, "-reupload_non-numeric.csv") == []


def test_a_succeeded_upload_uploaded_again_makes_no_new_job(
    stack: LocalStack, done: DoneEvents, aws: dict[str, Any]
) -> None:
    s3, bucket, table = aws["s3"], stack.config.bucket, stack.config.jobs_table
    key = "input/reupload/good.csv"
    uri = f"s3://{bucket}/{key}"
    body = feature_csv(50, seed=53)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    succeeded = done.wait_for(lambda e: e["input_uri"] == uri, key)
    assert succeeded["status"] == "SUCCEEDED", succeeded
    job_id = succeeded["job_id"]
    output_key = succeeded["output_uri"].removeprefix(f"s3://{bucket}/")
    before = len(ingest_log(stack, "duplicate upload event", job_id))

    wait_past_the_second_of(job_item(aws["dynamodb"], table, job_id))
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert wait_for_duplicate(stack, job_id, before)["state"] == "SUCCEEDED"
    assert set(jobs_of(aws, table, key)) == {job_id}
    assert outputs_named(aws, bucket, "-reupload_good.csv") == [output_key]
    assert s3.get_object(Bucket=bucket, Key=output_key)["Body"].read().count(b"\n") == 50
