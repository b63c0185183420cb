"""Feed an SQS queue to a Lambda-style handler, as Lambda's event source mapping does.

Batches of up to ``--batch-size`` messages, converted to the Lambda SQS event
shape; the messages the handler reports in ``batchItemFailures`` (or all of them
when it raises) are left for the visibility timeout to return, which is what
makes the queue's redrive policy move poison messages to the DLQ.

    python -m infra.local.poller --queue-url URL [--queue-url URL ...] \\
        --handler services.status.handler:handler
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("byom.local.poller")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def to_lambda_record(message: Any, queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "dataType": value["DataType"],
                "stringListValues": [],
                "binaryListValues": [],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def load_handler(spec: str) -> Handler:
    module_name, _, attribute = spec.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), attribute or "handler")
    return handler


def poll(
    queue_urls: list[str],
    handler: Handler,
    *,
    function_name: str,
    batch_size: int,
    wait_seconds: int,
    timeout_seconds: int,
    should_stop: Callable[[], bool],
) -> None:
    """Poll the queues in turn (one event source mapping each) until told to stop."""
    sqs = boto3.client("sqs")
    region = sqs.meta.region_name
    arns = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for url in queue_urls
    }
    # Long polling one queue would starve the others, so with several queues the
    # poller sweeps them without waiting and pauses only when all were empty.
    wait = wait_seconds if len(queue_urls) == 1 else 0
    while not should_stop():
        received = 0
        for url in queue_urls:
            try:
                received += _poll_once(
                    sqs, url, arns[url], region, handler, function_name, batch_size, wait,
                    timeout_seconds,
                )  # fmt: skip
            except (BotoCoreError, ClientError):
                # Like Lambda's event source mapping: keep polling through outages.
                log.exception("polling %s failed; trying again", url)
                time.sleep(1)
        if not received and wait == 0:
            time.sleep(wait_seconds)


def _poll_once(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    region: str,
    handler: Handler,
    function_name: str,
    batch_size: int,
    wait_seconds: int,
    timeout_seconds: int,
) -> int:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch_size,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = response.get("Messages", [])
    if not messages:
        return 0
    event = {"Records": [to_lambda_record(m, queue_arn, region) for m in messages]}
    context = LambdaContext(function_name=function_name, timeout_seconds=timeout_seconds)
    try:
        result = handler(event, context) or {}
    except Exception:
        log.exception("handler raised; the whole batch will be retried")
        return len(messages)
    failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
    done = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
        for i, m in enumerate(messages)
        if m["MessageId"] not in failed
    ]
    if done:
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
    return len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue-url", required=True, action="append", help="repeatable")
    parser.add_argument("--handler", required=True, help="module:function")
    parser.add_argument("--function-name", default="byom-local")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--wait-seconds", type=int, default=1)
    parser.add_argument("--timeout-seconds", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s poller %(message)s")

    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poll(
        args.queue_url,
        load_handler(args.handler),
        function_name=args.function_name,
        batch_size=args.batch_size,
        wait_seconds=args.wait_seconds,
        timeout_seconds=args.timeout_seconds,
        should_stop=lambda: stopping,
    )


if __name__ == "__main__":
    main()
