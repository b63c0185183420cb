"""Lambda entry point: the DLQs of the ingest, scheduler and status queues."""

from __future__ import annotations

from services.status.dead_letters import handle_dead_letter
from shared.lambda_sqs import sqs_handler

handler = sqs_handler("byom-dead-letters", handle_dead_letter)
