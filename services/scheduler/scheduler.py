"""Scheduler: run a job's chunks, inline when the file is small, else as a Batch array.

The same calls reach AWS Batch in production and byom's local Batch runner on a
laptop; only ``AWS_ENDPOINT_URL_BATCH`` differs.

Submission is idempotent. The array's name is derived from the job id, and
before submitting, the scheduler looks for an array of that name: a delivery of
the schedule request that died between SubmitJob and recording the array left
one behind, and it is recorded now instead of running the work a second time.
Arrays that turn out to be duplicates (two deliveries at once) are terminated.

A scale-to-zero endpoint found without capacity is woken first (``wake.py``) and
the job marked ``WAITING_FOR_ENDPOINT``; such a job always goes to Batch, whose
workers wait for the endpoint, never inline (a Lambda's minutes are too few).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.scheduler import batch_jobs, inline, wake
from shared import aws, tracing
from shared.jobs import JobStore
from shared.schemas import ChunkPlan, JobItem, JobState, ScheduleRequest
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient

log = logging.getLogger(__name__)

# AWS Batch array jobs have between 2 and 10,000 children; one child is a plain job.
MAX_ARRAY_SIZE = 10_000


@dataclass(frozen=True)
class ArrayPlan:
    children: int
    chunks_per_child: int


def size_array(
    chunk_count: int, *, data_bytes: int, bytes_per_child: int, capacity: int
) -> ArrayPlan:
    """One child per ``bytes_per_child`` of rows, within the capacity; chunks go round-robin.

    A child costs a start-up, so it should get enough bytes to pay for it; more
    children than chunks, or than can run at once, would only wait or idle.
    """
    wanted = math.ceil(data_bytes / bytes_per_child)
    children = max(1, min(wanted, capacity, chunk_count, MAX_ARRAY_SIZE))
    return ArrayPlan(children=children, chunks_per_child=math.ceil(chunk_count / children))


def capacity(settings: Settings) -> int:
    """Children that can run at once: the compute environment's vCPUs, and the cap."""
    return max(
        1, min(int(settings.max_vcpus // settings.worker_vcpus), settings.max_array_children)
    )


def read_plan(plan_key: str, settings: Settings) -> ChunkPlan:
    body = aws.s3().get_object(Bucket=settings.bucket, Key=plan_key)["Body"].read()
    return ChunkPlan.model_validate_json(body)


def submit_array(
    job: JobItem, request: ScheduleRequest, plan: ChunkPlan, settings: Settings, batch: BatchClient
) -> str:
    """SubmitJob for the job's array, named after the job; returns the Batch job id."""
    # Decoding images costs far more per byte than parsing rows: an image or video
    # job gets a child per chunk (within the capacity), a CSV job one per bytes_per_child.
    data_bytes = plan.size - plan.data_start
    if plan.media is not None:
        data_bytes = len(plan.chunks) * settings.bytes_per_child
    sizing = size_array(
        len(plan.chunks),
        data_bytes=data_bytes,
        bytes_per_child=settings.bytes_per_child,
        capacity=capacity(settings),
    )
    environment = [
        {"name": "BYOM_JOB_ID", "value": job.job_id},
        {"name": "BYOM_PLAN_KEY", "value": request.plan_key},
        {"name": "BYOM_ARRAY_SIZE", "value": str(sizing.children)},
    ]
    submit_args: dict[str, object] = {
        "jobName": batch_jobs.job_name(job.job_id, job.retries),
        "jobQueue": settings.batch_job_queue,
        "jobDefinition": settings.batch_job_definition,
        "containerOverrides": {"environment": environment},
        "retryStrategy": {"attempts": settings.worker_attempts},
        "timeout": {"attemptDurationSeconds": settings.worker_timeout_seconds},
        "tags": {"byom:job-id": job.job_id},
    }
    if sizing.children > 1:
        submit_args["arrayProperties"] = {"size": sizing.children}
    # The children continue the trace from the SubmitJob span.
    with tracing.aws_call("Batch", "SubmitJob", **tracing.job_attributes(job.job_id)):
        trace_header = tracing.current_header()
        if trace_header:
            environment.append({"name": "BYOM_TRACE_HEADER", "value": trace_header})
        response = batch.submit_job(**submit_args)  # type: ignore[arg-type]
    log.info(
        "array job submitted",
        extra={
            "job_id": job.job_id,
            "batch_job_id": response["jobId"],
            "children": sizing.children,
        },
    )
    return response["jobId"]


def wake_endpoint(
    job: JobItem, store: JobStore, settings: Settings, sagemaker: Any | None
) -> JobItem:
    """The job, marked ``WAITING_FOR_ENDPOINT`` if its endpoint had no capacity (and
    was asked for some); unchanged otherwise."""
    with tracing.span("endpoint wake", **tracing.job_attributes(job.job_id)) as current:
        found = wake.capacity(settings, sagemaker or aws.sagemaker())
        if found is None or found.copies > 0:
            return job
        current.set_attribute("byom.endpoint.woken", found.woken)
        waiting = store.wait_for_endpoint(job.job_id)
    log.info(
        "waiting for the endpoint",
        extra={"job_id": job.job_id, "woken": found.woken, "asked_before": found.desired},
    )
    return waiting or job


def schedule(
    request: ScheduleRequest,
    store: JobStore | None = None,
    batch: BatchClient | None = None,
    sagemaker: Any = None,
) -> str | None:
    """Run a waiting job; returns the Batch job id it was recorded with, if any."""
    settings = get_settings()
    store = store or JobStore()
    batch = batch or aws.batch()
    job = store.get(request.job_id)
    if job is None or job.state.terminal or job.batch_job_id:
        log.info("nothing to schedule", extra={"job_id": request.job_id})
        return None
    plan = read_plan(request.plan_key, settings)
    if job.state is JobState.ACCEPTED and settings.inference_component:
        job = wake_endpoint(job, store, settings, sagemaker)
    # A retry's plan lists only the chunks left: inline scores a whole one-chunk job.
    if (
        job.state is not JobState.WAITING_FOR_ENDPOINT
        and job.chunk_count <= 1
        and inline.eligible(plan, settings)
    ):
        if job.state is not JobState.ACCEPTED:
            return None
        try:
            inline.score_inline(plan, job, settings)
            return None
        except inline.NoCapacity:
            # Scaled in between the look and the call: wake it, and run on Batch.
            job = wake_endpoint(job, store, settings, sagemaker)
    name = batch_jobs.job_name(job.job_id, job.retries)
    found = batch_jobs.arrays_named(batch, settings.batch_job_queue, name)
    usable = [array["jobId"] for array in found if batch_jobs.usable(array)]
    if usable:
        batch_job_id = usable[0]
        log.info("array found, not submitted again", extra={"job_id": job.job_id})
    elif job.state in (JobState.ACCEPTED, JobState.WAITING_FOR_ENDPOINT):
        batch_job_id = submit_array(job, request, plan, settings, batch)
    else:
        # Chunks are being counted but no array is recorded or found: an array
        # that Batch no longer lists; the reaper's deadline covers it.
        log.warning("running job with no array to record", extra={"job_id": job.job_id})
        return None
    if store.mark_submitted(job.job_id, batch_job_id) is None:
        current = store.get(job.job_id)
        kept = current.batch_job_id if current else None
        if kept != batch_job_id:
            # Another delivery recorded its array first; ours would only redo the
            # same chunks, so stop it, running children included.
            batch_jobs.terminate(batch, batch_job_id, kept)
            log.info("duplicate submission terminated", extra={"job_id": job.job_id})
        return None
    for array in found:
        if array["jobId"] != batch_job_id and array["status"] in batch_jobs.LIVE:
            batch_jobs.terminate(batch, array["jobId"], batch_job_id)
            log.info("duplicate array terminated", extra={"job_id": job.job_id})
    log.info("array job recorded", extra={"job_id": job.job_id, "batch_job_id": batch_job_id})
    return batch_job_id
