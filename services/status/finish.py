"""The happy ending: assemble the output, record success, announce it."""

from __future__ import annotations

import logging

from services.status.assemble import assemble, assemble_errors
from services.status.kinds import kind_of_job
from shared import aws, media
from shared.endings import announce, fail
from shared.formats import JobKind
from shared.jobs import JobStore
from shared.schemas import JobItem, JobState

log = logging.getLogger(__name__)


def succeed(job: JobItem, store: JobStore) -> None:
    """All chunks are in: write the output, then mark the job SUCCEEDED.

    The output must be complete before SUCCEEDED is written, so it exists for a
    moment before the job says so. A failure (reaper, dead letter, failed child)
    that wins that moment deletes the output itself; if it came before the
    output was completed, the loss of the SUCCEEDED write is seen here and the
    output just written is deleted again (``announce`` of a FAILED job does it).
    """
    current = store.get(job.job_id)
    if current is not None and current.state.terminal:
        # Cancelled or failed since its last chunk was counted: no output at all.
        announce(current, store)
        return
    errors_key = assemble_errors(job) if job.bad_rows else None
    if kind_of_job(job) is JobKind.MEDIA:  # drawn images first, then the output
        media.publish_drawn(job.bucket, job.job_id, job.output_key)
    assemble(job)
    finished = store.succeed(job.job_id, errors_key) or store.get(job.job_id)
    if finished is None or not finished.state.terminal:
        return
    if finished.state in (JobState.FAILED, JobState.CANCELLED):
        log.warning("job failed while its output was assembled", extra={"job_id": job.job_id})
        if errors_key and finished.errors_key != errors_key:
            aws.s3().delete_object(Bucket=job.bucket, Key=errors_key)
    announce(finished, store)


def too_many_bad_rows(job: JobItem, store: JobStore) -> None:
    """The SKIP policy's limit is crossed: fail, listing the rows rejected so far."""
    errors_key = assemble_errors(job)
    error = (
        f"s3://{job.bucket}/{job.input_key}: {job.bad_rows} bad rows so far, over the limit "
        f"of {job.policy.max_bad_rows} (byom-max-bad-rows metadata or BYOM_MAX_BAD_ROWS)"
    )
    if errors_key:
        error += f"; see s3://{job.bucket}/{errors_key}"
    fail(job.job_id, error, store, errors_key, cause="input")
