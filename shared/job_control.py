"""A person's say over a job: cancel it, or run it again from where it stopped.

Both work alike for upload-started jobs and for the objects of a SageMaker
transform job (``StopTransformJob`` cancels each object's job).

Cancel (``byom cancel JOB``): the job moves to CANCELLED (terminal, the reason
in ``error``), its Batch array is terminated (running children included), its
output is never written (a completion that arrives later is not counted and
its chunk files are swept, as for a FAILED job, and an assembly that lost the
race deletes what it wrote), the job item stays, and the done event goes out
with ``status: "CANCELLED"``: subscribers that act on SUCCEEDED only are right
to ignore it, and it is told apart from a failure of the work.

Retry (``byom retry JOB``): a FAILED or CANCELLED job goes back to ACCEPTED with
``retries`` one higher. The chunks it counted were set aside when it ended
(shared/resume.py); they are put back in staging, a plan listing only the other
chunks is written beside the original, and the scheduler runs it as a new
array (named for the run, shared/batch_contract.py). Its completions count on
top of the kept ones; the last one assembles the whole output as usual. A
retried job announces its end again: the done event carries ``retries``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from shared import aws, naming, resume
from shared.endings import announce
from shared.errors import ByomError
from shared.jobs import RETRYABLE, JobStore
from shared.schemas import ChunkPlan, JobItem, ScheduleRequest
from shared.settings import get_settings

log = logging.getLogger(__name__)


class JobNotFound(ByomError):
    pass


class NotRetryable(ByomError):
    pass


def cancel(job_id: str, reason: str, store: JobStore | None = None) -> JobItem:
    """Cancel a live job and announce it; a job that has ended is returned as it is.

    Repeatable: cancelling again (or a stop of a transform job that some object
    finished meanwhile) changes nothing and sends no second event.
    """
    store = store or JobStore()
    cancelled = store.cancel(job_id, f"cancelled: {reason}")
    if cancelled is None:
        current = store.get(job_id)
        if current is None:
            raise JobNotFound(f"no job {job_id!r} in table {store.table}")
        log.info("not cancelled: the job had ended", extra={"job_id": job_id})
        return current
    log.warning("job cancelled", extra={"job_id": job_id, "reason": reason})
    announce(cancelled, store)
    return cancelled


def retry_plan_key(job_id: str, run: int) -> str:
    return f"{naming.staging_prefix(job_id)}plan-retry-{run}.json"


def _retryable(job: JobItem) -> None:
    if job.state not in RETRYABLE:
        raise NotRetryable(
            f"job {job.job_id} is {job.state.value}: only a FAILED or CANCELLED job is retried"
        )
    if job.transform_job_name is not None:
        raise NotRetryable(
            f"job {job.job_id} is object {job.transform_index} of transform job "
            f"{job.transform_job_name}: run the transform job again (CreateTransformJob)"
        )
    if job.plan_key is None or not job.chunk_count:
        raise NotRetryable(
            f"job {job.job_id} never got as far as a chunk plan (its upload was refused: "
            f"{job.error}); fix the file and upload it again"
        )


def _read_plan(job: JobItem) -> ChunkPlan:
    assert job.plan_key is not None
    s3 = aws.s3()
    try:
        body = s3.get_object(Bucket=job.bucket, Key=job.plan_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise NotRetryable(
            f"job {job.job_id}: its plan is gone (staging expires after a few days); "
            "upload the file again"
        ) from None
    return ChunkPlan.model_validate_json(body)


def pending_plan(job: JobItem, plan: ChunkPlan, reused: Iterable[int]) -> ChunkPlan:
    """The plan of the chunks not reused, as the retry's array runs it.

    When every chunk is reused (the job ended between its last count and its
    assembly) the last chunk is scored again: its completion, a duplicate,
    assembles the output.
    """
    skip = set(reused)
    pending = tuple(chunk for chunk in plan.chunks if chunk.index not in skip)
    update: dict[str, object] = {"chunks": pending or plan.chunks[-1:]}
    if plan.key.startswith(naming.staging_prefix(job.job_id)):
        # An inflated upload, copied back: a copy may carry another ETag.
        head = aws.s3().head_object(Bucket=plan.bucket, Key=plan.key)
        update["etag"] = head["ETag"].strip('"')
    return plan.model_copy(update=update)


def retry(job_id: str, store: JobStore | None = None) -> JobItem:
    """Run a FAILED or CANCELLED job again, scoring only the chunks it did not finish."""
    store = store or JobStore()
    settings = get_settings()
    job = store.get(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r} in table {store.table}")
    _retryable(job)
    restored = resume.restore_kept(job, remove=False)
    # What is really there decides, not the item's counters: a chunk whose kept
    # output is missing (keeping failed, or it expired) is scored again.
    counted = resume.counted_chunks(job, job.done_chunks)
    plan = pending_plan(job, _read_plan(job), counted)
    run = job.retries + 1
    plan_key = retry_plan_key(job.job_id, run)
    aws.s3().put_object(
        Bucket=job.bucket,
        Key=plan_key,
        Body=plan.model_dump_json().encode(),
        ContentType="application/json",
    )
    deadline = int(time.time()) + settings.job_deadline_seconds
    reopened = store.reopen(job, deadline, counted)
    if reopened is None:
        raise NotRetryable(f"job {job_id} changed while it was retried (retried already?)")
    request = ScheduleRequest(job_id=job.job_id, chunk_count=len(plan.chunks), plan_key=plan_key)
    aws.sqs().send_message(
        QueueUrl=settings.scheduler_queue_url, MessageBody=request.model_dump_json()
    )
    resume.remove_kept(job)
    log.warning(
        "job retried",
        extra={
            "job_id": job.job_id,
            "run": run,
            "chunks": len(plan.chunks),
            "kept_objects": restored,
        },
    )
    return reopened
