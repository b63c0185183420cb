"""Batch's own word that an array child is gone: fail the job it was working for.

A child that fails every attempt without reporting (killed, out of memory,
timed out) sends no completion; the "Batch Job State Change" event for it is
then the only news, and it must end the job instead of leaving it RUNNING.
"""

from __future__ import annotations

import logging

from shared import logs
from shared.batch_contract import array_name, is_duplicate
from shared.endings import fail
from shared.jobs import JobStore
from shared.schemas import BatchJobStateChange

log = logging.getLogger(__name__)


def handle_batch_event(event: BatchJobStateChange, store: JobStore | None = None) -> None:
    detail = event.detail
    job_id = detail.environment("BYOM_JOB_ID")
    if detail.status != "FAILED" or job_id is None:
        return
    logs.append_job_keys(job_id)
    store = store or JobStore()
    job = store.get(job_id)
    if job is None:
        return
    array = detail.jobId.split(":")[0]
    superseded = job.batch_job_id is not None and job.batch_job_id != array
    # An array of a run before ``byom retry`` (its name says which run it was).
    superseded = superseded or detail.jobName != array_name(job_id, job.retries)
    if superseded or is_duplicate(detail.statusReason):
        # A duplicate the scheduler terminated: its failure says nothing about the
        # job. An array not recorded yet (the scheduler died before recording it)
        # is the job's own, and its failure counts.
        log.info("state change of a terminated duplicate", extra={"job_id": job_id})
        return
    reason = detail.statusReason or detail.container.reason or "no reason given"
    if detail.attempts and detail.attempts[-1].statusReason:
        reason = detail.attempts[-1].statusReason
    error = f"worker {detail.jobId} failed after {len(detail.attempts) or 1} attempt(s): {reason}"
    fail(job_id, error, store, cause="worker")
    log.warning("array child failed", extra={"job_id": job_id, "batch_job_id": detail.jobId})
