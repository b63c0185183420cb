"""How every job ends: one terminal state, one announcement, no staging left behind.

Used by whichever service learns that a job is over: ingest (bad upload), status
(last chunk, failed chunk, failed Batch child, dead letter) and the reaper.

A FAILED or CANCELLED job keeps no output: its array is terminated and its output
object deleted, every time its ending is announced (idempotent, so a duplicate
or a sweep by the reaper can redo what a crash left undone). The chunks it
finished are set aside for ``byom retry`` (shared/resume.py) before its staging
is removed. Whatever a
terminated child still writes is followed by its completion message, and status
sweeps the chunk's staging objects when that completion finds the job ended.
"""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from shared import aws, media, metrics, naming, resume
from shared.events import publish_done
from shared.jobs import JobStore
from shared.schemas import JobItem, JobState
from shared.transform_end import object_job_ended

log = logging.getLogger(__name__)


def fail(
    job_id: str,
    error: str,
    store: JobStore,
    errors_key: str | None = None,
    *,
    cause: str = "other",
) -> JobItem | None:
    """Mark the job FAILED unless it has ended already, and announce how it ended.

    ``cause`` (one of ``metrics.CAUSES``) is counted once, by whoever ends the job.
    """
    failed = store.fail(job_id, error, errors_key)
    if failed is not None:
        metrics.failure(cause)
    job = failed or store.get(job_id)
    if job is not None and job.state.terminal:
        announce(job, store)
    return job


def announce(job: JobItem, store: JobStore) -> None:
    """Make a finished job's ending hold, send the done event unless it went out
    already, then tidy the staging area.

    A FAILED or CANCELLED job's output is undone first, also when the event went
    out before: a late assembly or write may have come after the first
    announcement. The event is sent before it is recorded as sent, so a crash in
    between sends it twice rather than never (subscribers dedupe on ``job_id``
    and ``retries``).
    """
    if job.state in (JobState.FAILED, JobState.CANCELLED):
        stop_workers(job)
        remove_output(job, store)
        if job.transform_job_name is None:  # a transform object is not retried
            resume.keep_finished(job)  # before staging goes: a retry resumes from it
    object_job_ended(job)  # a transform object's ending counts on its transform job
    if store.event_sent(job.job_id):
        # A crash between recording the event and tidying up would otherwise
        # leave staging behind for good; removing it again is harmless.
        remove_staging(job)
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


def stop_workers(job: JobItem) -> None:
    """Terminate the job's array: its children would only write for a dead job."""
    if not job.batch_job_id:
        return
    try:
        aws.batch().terminate_job(
            jobId=job.batch_job_id, reason=f"byom job {job.job_id} ended {job.state.value}"
        )
    except ClientError as exc:
        # Batch's 4xx (ClientException): it no longer knows the job, so nothing runs.
        if exc.response.get("Error", {}).get("Code") != "ClientException":
            raise
        log.warning(
            "Batch refused to terminate the array",
            extra={"job_id": job.job_id, "batch_job_id": job.batch_job_id, "error": str(exc)},
        )


def remove_output(job: JobItem, store: JobStore) -> None:
    """A FAILED job has no output: delete it, if the name is this job's own.

    The claim check keeps a job whose item names an unclaimed key (one the
    dead-letter handler made up) from deleting another job's output.
    """
    if store.owns_output(job.job_id, job.output_key):
        aws.s3().delete_object(Bucket=job.bucket, Key=job.output_key)
        media.remove_drawn(job.bucket, job.output_key)  # an image job's drawn images


def remove_chunk_staging(job: JobItem, chunk_index: int) -> None:
    """Delete what a worker wrote for one chunk (a late write for an ended job)."""
    keys = (
        naming.chunk_output_key(job.job_id, chunk_index),
        naming.chunk_errors_key(job.job_id, chunk_index),
    )
    aws.s3().delete_objects(
        Bucket=job.bucket,
        Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
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
