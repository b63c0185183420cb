"""Lambda entry point: S3 "Object Created" events, delivered through SQS."""

from __future__ import annotations

from services.ingest.ingest import handle_upload
from shared.lambda_sqs import sqs_handler
from shared.schemas import S3ObjectCreatedEvent

handler = sqs_handler(
    "byom-ingest", lambda body: handle_upload(S3ObjectCreatedEvent.model_validate_json(body))
)
