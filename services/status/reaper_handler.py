"""Lambda entry point: a scheduled EventBridge rule runs the reaper every few minutes."""

from __future__ import annotations

from typing import Any

from services.status.reaper import reap
from shared import logs, metrics, tracing

logs.configure("byom-reaper")
tracing.configure("byom-reaper")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        with logs.job_scope(), tracing.span("byom-reaper.run"):
            run = reap()
            return {"reaped": run.reaped, "announced": run.announced, "troubled": run.troubled}
    finally:
        metrics.flush()
        tracing.flush()
