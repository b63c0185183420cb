"""The one shape of byom's Lambda handlers: an SQS batch in, partial failures out.

Each record is processed in its own span, continuing the trace its sender put in
the ``AWSTraceHeader`` attribute. A record whose processing raises is reported
in ``batchItemFailures`` (Powertools' BatchProcessor), so SQS redelivers only
that one and, after the queue's maxReceiveCount, moves it to the DLQ. Its log
lines carry the job (and chunk) the message names (``shared/logs.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from shared import logs, metrics, tracing

LambdaHandler = Callable[[dict[str, Any], Any], PartialItemFailureResponse]


def sqs_handler(service: str, process: Callable[[str], object]) -> LambdaHandler:
    """Build a Lambda handler that calls ``process(body)`` for every SQS record."""
    logs.configure(service)
    tracing.configure(service)
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        with (
            logs.job_scope(),
            tracing.consuming(
                record.event_source_arn or service,
                record.attributes.aws_trace_header,
                record.message_id,
            ),
        ):
            keys = job_keys_of(record.body)  # one parse: the span and the log lines
            if "job_id" in keys:
                tracing.tag_current_job(keys["job_id"])
            logs.append_job_keys(**keys)
            process(record.body)

    def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        try:
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        finally:
            metrics.flush()
            tracing.flush()

    return handler


def job_keys_of(body: str) -> dict[str, Any]:
    """The job (and chunk) a message is about, when it says so at its top level.

    Only for log lines: the service still parses the message itself, and one
    that names its job elsewhere (an S3 event) adds the key where it learns it.
    """
    try:
        message = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(message, dict):
        return {}
    keys: dict[str, Any] = {}
    if isinstance(message.get("job_id"), str):
        keys["job_id"] = message["job_id"]
    if isinstance(message.get("chunk_index"), int):
        keys["chunk_index"] = message["chunk_index"]
    return keys
