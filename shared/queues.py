"""Sending byom's messages to SQS, carrying the trace along."""

from __future__ import annotations

from pydantic import BaseModel

from shared import aws, tracing


def send(queue_url: str, message: BaseModel) -> str:
    """Send one message; returns its SQS message id."""
    with tracing.sending(queue_url, **tracing.job_attributes(getattr(message, "job_id", None))):
        response = aws.sqs().send_message(
            QueueUrl=queue_url,
            MessageBody=message.model_dump_json(),
            MessageSystemAttributes=tracing.sqs_trace_attributes(),
        )
    return response["MessageId"]
