"""How every job ends: one terminal state, one announcement, no staging left behind.

Used by whichever service learns that a job is over: ingest (bad upload), status
(last chunk, failed chunk, failed Batch child, dead letter) and the reaper.
"""

from __future__ import annotations

import logging

from shared import aws, metrics, naming
from shared.events import publish_done
from shared.jobs import JobStore
from shared.schemas import JobItem

log = logging.getLogger(__name__)


def fail(job_id: str, error: str, store: JobStore, errors_key: str | None = None) -> JobItem | None:
    """Mark the job FAILED unless it has ended already, and announce how it ended."""
    job = store.fail(job_id, error, errors_key) or store.get(job_id)
    if job is not None and job.state.terminal:
        announce(job, store)
    return job


def announce(job: JobItem, store: JobStore) -> None:
    """Send the done event unless it went out already, then tidy the staging area.

    The event is sent before it is recorded as sent, so a crash in between sends
    it twice rather than never (subscribers dedupe on ``job_id``).
    """
    if store.event_sent(job.job_id):
        return
    publish_done(job)
    store.mark_event_sent(job.job_id)
    remove_staging(job)
    metrics.count(f"Jobs{job.state.value.title()}")
    metrics.count("RowsScored", job.rows)
    metrics.count("RowsRejected", job.bad_rows)
    log.info(
        "job finished",
        extra={"job_id": job.job_id, "state": job.state.value, "rows": job.rows},
    )


def remove_staging(job: JobItem) -> None:
    """Delete the job's plan and chunk outputs once the job has ended."""
    s3 = aws.s3()
    prefix = naming.staging_prefix(job.job_id)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=job.bucket, Prefix=prefix):
        keys = [obj["Key"] for obj in page.get("Contents", [])]
        if keys:
            s3.delete_objects(
                Bucket=job.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
