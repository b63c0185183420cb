"""The backstop for jobs nobody finishes: fail the overdue, announce the unannounced.

Runs on a schedule (an EventBridge rule on AWS, a timer in the local stack). It
fails live jobs past their deadline, saying how far they got, and sends the done
event of terminal jobs whose event is not recorded as sent a grace period after
they ended (their finisher died or could not publish). One job's trouble is
logged and skipped, never the end of the run: the next run tries it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared import logs
from shared.endings import announce, fail
from shared.jobs import JobStore

log = logging.getLogger(__name__)

# Long enough that a finisher still at work (it announces within seconds) is not
# doubled; short beside the reaper's own schedule.
ANNOUNCE_GRACE_SECONDS = 120


@dataclass
class ReaperRun:
    reaped: list[str] = field(default_factory=list)  # failed for their deadline
    announced: list[str] = field(default_factory=list)  # done events sent late
    troubled: list[str] = field(default_factory=list)  # raised; left for the next run


def reap(
    store: JobStore | None = None,
    now: float | None = None,
    grace_seconds: float = ANNOUNCE_GRACE_SECONDS,
) -> ReaperRun:
    store = store or JobStore()
    now = time.time() if now is None else now
    run = ReaperRun()
    for job in store.overdue(int(now)):
        logs.append_job_keys(job.job_id)
        error = (
            f"timed out: no result {int(now) - int(job.created_at.timestamp())} s after upload; "
            f"last known state {job.state.value}, {job.chunks_done} of {job.chunk_count} chunks "
            f"done ({job.rows} rows)"
        )
        if job.batch_job_id:
            error += f", Batch job {job.batch_job_id}"
        try:
            fail(job.job_id, error, store, cause="deadline")
        except Exception:
            log.exception("could not fail an overdue job", extra={"job_id": job.job_id})
            run.troubled.append(job.job_id)
            continue
        run.reaped.append(job.job_id)
        log.warning("job timed out", extra={"job_id": job.job_id})
    cutoff = datetime.fromtimestamp(now - grace_seconds, UTC)
    for job in store.unannounced(cutoff):
        logs.append_job_keys(job.job_id)
        try:
            announce(job, store)
        except Exception:
            log.exception("could not announce a finished job", extra={"job_id": job.job_id})
            run.troubled.append(job.job_id)
            continue
        run.announced.append(job.job_id)
        log.warning("done event sent late", extra={"job_id": job.job_id})
    return run
