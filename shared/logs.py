"""Structured JSON logging for entry points (handlers, worker, local runners).

Modules log with ``logging.getLogger(__name__)`` and pass ``extra={...}``; only
entry points call :func:`configure`, which routes every logger through
Powertools' JSON formatter so CloudWatch and the local console see the same lines.

Every line a job causes carries ``job_id`` (and ``chunk_index`` where one chunk is
at work) and the ``trace_id`` of the current span, so one job's lines can be
found across every service (``byom logs JOB``). The keys live in Powertools'
context-variable store (``thread_safe_append_keys``): an asyncio task or a thread
sees the keys of the context it was started in, and its own additions stay its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools.logging.formatter import (
    LambdaPowertoolsFormatter,
    clear_context_keys,
    set_context_keys,
)
from opentelemetry import trace

JOB_KEYS = ("job_id", "chunk_index")


class _TraceId(logging.Filter):
    """Adds the current span's trace id (32 hex digits, as OTLP carries it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = trace.format_trace_id(context.trace_id)
        return True


def configure(service: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LambdaPowertoolsFormatter(service=service))
    handler.addFilter(_TraceId())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def append_job_keys(job_id: str | None = None, chunk_index: int | None = None) -> None:
    """Add the job (and chunk) to every following line of this context."""
    keys: dict[str, object] = {}
    if job_id is not None:
        keys["job_id"] = job_id
    if chunk_index is not None:
        keys["chunk_index"] = chunk_index
    if keys:
        set_context_keys(**keys)  # type: ignore[arg-type]


@contextmanager
def job_scope() -> Iterator[None]:
    """One unit of work (an SQS record, a reaper run): its keys end with it."""
    clear_context_keys()
    try:
        yield
    finally:
        clear_context_keys()
