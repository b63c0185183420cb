"""Sending byom's messages to SQS, and reading them back from Lambda-shaped records."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from shared import aws, tracing

M = TypeVar("M", bound=BaseModel)


def send(queue_url: str, message: BaseModel) -> str:
    """Send one message; returns its SQS message id."""
    response = aws.sqs().send_message(
        QueueUrl=queue_url,
        MessageBody=message.model_dump_json(),
        MessageSystemAttributes=tracing.sqs_trace_attributes(),
    )
    return response["MessageId"]


def parse(body: str, model: type[M]) -> M:
    return model.model_validate_json(body)
