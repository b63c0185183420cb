"""The scheduler's Batch jobs: one deterministic name per byom job, found before submitting.

A job's array is named ``byom-<job id>``, so any delivery of its schedule request
can find an array an earlier delivery submitted (ListJobs with a ``JOB_NAME``
filter lists every status) instead of submitting a second one. Arrays that turn
out to be duplicates are terminated with :data:`DUPLICATE_REASON`, by which the
status service recognises their failures as saying nothing about the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_batch.type_defs import JobSummaryTypeDef

DUPLICATE_REASON = "byom: duplicate submission"
# The container overrides the scheduler sets on a submission, and all it sets: the
# job a child works on and the trace it continues (settings come from the job
# definition). The local Batch runner accepts these names only.
OVERRIDE_VARIABLES = frozenset(
    {"BYOM_JOB_ID", "BYOM_PLAN_KEY", "BYOM_ARRAY_SIZE", "BYOM_TRACE_HEADER"}
)
# States in which an array is doing, or has done, the job's work.
USABLE = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"})
LIVE = USABLE - {"SUCCEEDED"}


def job_name(job_id: str) -> str:
    # Batch names: up to 128 letters, digits, hyphens, underscores; job ids are hex.
    return f"byom-{job_id}"


def arrays_named(batch: BatchClient, queue: str, name: str) -> list[JobSummaryTypeDef]:
    """Every job of that name on the queue, any status, oldest first."""
    pages = batch.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    # The filter is case-insensitive and the listing newest-first.
    found = [job for page in pages for job in page["jobSummaryList"] if job["jobName"] == name]
    return sorted(found, key=lambda job: job.get("createdAt", 0))


def usable(job: JobSummaryTypeDef) -> bool:
    stopped = job.get("isTerminated", False) or job.get("isCancelled", False)
    return not stopped and job["status"] in USABLE


def terminate(batch: BatchClient, batch_job_id: str, kept: str | None) -> None:
    """Stop a duplicate, running children included (CancelJob would let them run)."""
    batch.terminate_job(jobId=batch_job_id, reason=f"{DUPLICATE_REASON}; kept {kept}")


def is_duplicate(status_reason: str | None) -> bool:
    return bool(status_reason) and str(status_reason).startswith(DUPLICATE_REASON)
