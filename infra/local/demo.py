"""``make demo``: start the local stack, upload the sample, print what comes back.

Uses only what a user would: a plain S3 client to upload, a queue subscribed to
byom's done events to wait, and DynamoDB to read the job item. The stack keeps the
user's own ``BYOM_*`` and ``OTEL_*`` settings, as ``make up`` does
(:mod:`infra.local.stack_settings`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig

SAMPLE = REPO / "model" / "sample" / "sample.csv"


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def wait_for_done_event(sqs: Any, queue_url: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            event: dict[str, Any] = json.loads(message["Body"])
            return event
    raise TimeoutError(f"no done event within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=REPO / "model" / "artifacts")
    parser.add_argument("--file", type=Path, default=SAMPLE)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    # A plain SIGTERM would end this process without stopping the stack's.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    print("starting the local stack ...", flush=True)
    started = time.monotonic()
    config = StackConfig(model_dir=args.model_dir, user_env=dict(os.environ))
    with LocalStack(config) as stack:
        print(f"  up in {time.monotonic() - started:.1f} s; logs in {stack.log_dir}")
        done_queue = stack.subscribe_done_events("byom-demo-done-events")
        s3, sqs = stack.client("s3"), stack.client("sqs")
        key = f"input/{args.file.name}"
        print(f"uploading {args.file} to s3://{stack.config.bucket}/{key}")
        uploaded = time.monotonic()
        s3.upload_file(str(args.file), stack.config.bucket, key)
        try:
            event = wait_for_done_event(sqs, done_queue, args.timeout)
        except TimeoutError:
            print(stack.logs())
            raise
        detail = event["detail"]
        print(f"\ndone event after {time.monotonic() - uploaded:.1f} s:")
        print(json.dumps(detail, indent=2))
        if detail["output_uri"]:
            output_key = detail["output_uri"].split("/", 3)[3]
            body = s3.get_object(Bucket=stack.config.bucket, Key=output_key)["Body"].read()
            print(f"\n{detail['output_uri']}:")
            print(body.decode())
        item = stack.client("dynamodb").get_item(
            TableName=stack.config.jobs_table, Key={"job_id": {"S": detail["job_id"]}}
        )["Item"]
        print("job item:")
        readable = {key: TypeDeserializer().deserialize(value) for key, value in item.items()}
        print(json.dumps(readable, indent=2, sort_keys=True, default=_plain))
        if detail["status"] != "SUCCEEDED":
            raise SystemExit(1)


if __name__ == "__main__":
    main()
