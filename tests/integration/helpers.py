"""Small helpers for tests that drive the local stack the way a user would."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any


def collect_done_events(
    sqs: Any, queue_url: str, input_uris: set[str], timeout: float
) -> dict[str, dict[str, Any]]:
    """Done-event details by input URI, waiting until every URI has one."""
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not input_uris <= found.keys():
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            detail = json.loads(message["Body"])["detail"]
            found.setdefault(detail["input_uri"], detail)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    missing = input_uris - found.keys()
    if missing:
        raise TimeoutError(f"no done event within {timeout:.0f} s for {sorted(missing)}")
    return found


def job_item(dynamodb: Any, table: str, job_id: str) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=table, Key={"job_id": {"S": job_id}})["Item"]
    return {key: next(iter(value.values())) for key, value in item.items()}


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    response = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for obj in response.get("Contents", [])]


def set_model_faults(model_server_url: str, status: int, count: int) -> None:
    """Make the model server answer ``status`` to its next ``count`` invocations."""
    request = urllib.request.Request(
        f"{model_server_url}/_byom/faults",
        data=json.dumps({"status": status, "count": count}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def with_cell(data: bytes, line: int, column: int, cell: bytes) -> bytes:
    """``data`` with the cell at (line, column) (1-based, no header) replaced by ``cell``."""
    lines = data.split(b"\n")
    cells = lines[line - 1].split(b",")
    cells[column - 1] = cell
    lines[line - 1] = b",".join(cells)
    return b"\n".join(lines)
