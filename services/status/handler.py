"""Lambda entry point: the status queue (worker completions and Batch state changes)."""

from __future__ import annotations

from services.status.status import handle_status_message
from shared.lambda_sqs import sqs_handler

handler = sqs_handler("byom-status", handle_status_message)
