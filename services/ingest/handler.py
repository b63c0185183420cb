"""Lambda entry point: S3 "Object Created" events and SageMaker transform objects,
delivered through SQS (the API sends a transform job's objects to the same queue)."""

from __future__ import annotations

import json

from services.ingest.ingest import handle_upload
from services.ingest.transform_object import handle_transform_object
from shared.lambda_sqs import sqs_handler
from shared.schemas import S3ObjectCreatedEvent
from shared.transform import TRANSFORM_OBJECT, TransformObject


def handle_message(body: str) -> str | None:
    """One message of the ingest queue: a transform object, else an S3 event."""
    document = json.loads(body)
    if isinstance(document, dict) and document.get("type") == TRANSFORM_OBJECT:
        return handle_transform_object(TransformObject.model_validate(document))
    return handle_upload(S3ObjectCreatedEvent.model_validate(document))


handler = sqs_handler("byom-ingest", handle_message)
