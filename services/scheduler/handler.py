"""Lambda entry point: schedule requests from ingest, delivered through SQS."""

from __future__ import annotations

from services.scheduler.scheduler import schedule
from shared.lambda_sqs import sqs_handler
from shared.schemas import ScheduleRequest

handler = sqs_handler(
    "byom-scheduler", lambda body: schedule(ScheduleRequest.model_validate_json(body))
)
