"""Fail jobs whose deadline has passed, saying how far they got.

Runs on a schedule (an EventBridge rule on AWS, a timer in the local stack). It
is the backstop for anything that stops a job without a message saying so.
"""

from __future__ import annotations

import logging
import time

from shared.endings import fail
from shared.jobs import JobStore

log = logging.getLogger(__name__)


def reap(store: JobStore | None = None, now: float | None = None) -> list[str]:
    """Fail every live job past its deadline; returns their ids."""
    store = store or JobStore()
    now = time.time() if now is None else now
    reaped = []
    for job in store.overdue(int(now)):
        error = (
            f"timed out: no result {int(now) - int(job.created_at.timestamp())} s after upload; "
            f"last known state {job.state.value}, {job.chunks_done} of {job.chunk_count} chunks "
            f"done ({job.rows} rows)"
        )
        if job.batch_job_id:
            error += f", Batch job {job.batch_job_id}"
        fail(job.job_id, error, store)
        reaped.append(job.job_id)
        log.warning("job timed out", extra={"job_id": job.job_id})
    return reaped
