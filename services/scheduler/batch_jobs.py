"""The scheduler's Batch jobs: one deterministic name per byom job, found before submitting.

A job's array is named ``byom-<job id>``, so any delivery of its schedule request
can find an array an earlier delivery submitted (ListJobs with a ``JOB_NAME``
filter lists every status) instead of submitting a second one. Arrays that turn
out to be duplicates are terminated with :data:`DUPLICATE_REASON`, by which the
status service recognises their failures as saying nothing about the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.batch_contract import DUPLICATE_REASON, OVERRIDE_VARIABLES, array_name, is_duplicate

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_batch.type_defs import JobSummaryTypeDef

# States in which an array is doing, or has done, the job's work.
USABLE = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"})
LIVE = USABLE - {"SUCCEEDED"}


def job_name(job_id: str, run: int = 0) -> str:
    return array_name(job_id, run)


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


__all__ = ["DUPLICATE_REASON", "OVERRIDE_VARIABLES", "arrays_named", "is_duplicate", "job_name"]
