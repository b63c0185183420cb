"""Lambda entry point: chunk completions from the inference workers, through SQS."""

from __future__ import annotations

from services.status.status import handle_chunk_done
from shared.lambda_sqs import sqs_handler
from shared.schemas import ChunkDone

handler = sqs_handler(
    "byom-status", lambda body: handle_chunk_done(ChunkDone.model_validate_json(body))
)
