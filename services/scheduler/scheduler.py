"""Scheduler: size the worker array for a job and submit it to AWS Batch.

The same call reaches AWS Batch in production and byom's local Batch runner on a
laptop; only ``AWS_ENDPOINT_URL_BATCH`` differs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from shared import aws, tracing
from shared.jobs import JobStore
from shared.schemas import JobState, ScheduleRequest
from shared.settings import get_settings

log = logging.getLogger(__name__)

# AWS Batch array jobs have between 2 and 10,000 children; one child is a plain job.
MAX_ARRAY_SIZE = 10_000


@dataclass(frozen=True)
class ArrayPlan:
    children: int
    chunks_per_child: int


def size_array(chunk_count: int, *, chunks_per_child: int, max_children: int) -> ArrayPlan:
    """Enough children for ``chunks_per_child`` each, capped; chunks go round-robin."""
    children = max(1, min(math.ceil(chunk_count / chunks_per_child), max_children, MAX_ARRAY_SIZE))
    return ArrayPlan(children=children, chunks_per_child=math.ceil(chunk_count / children))


def schedule(request: ScheduleRequest, store: JobStore | None = None) -> str | None:
    """Submit the array job for a job that is waiting; returns the Batch job id."""
    settings = get_settings()
    store = store or JobStore()
    job = store.get(request.job_id)
    if job is None or job.state is not JobState.ACCEPTED or job.batch_job_id:
        log.info("nothing to schedule", extra={"job_id": request.job_id})
        return None
    plan = size_array(
        request.chunk_count,
        chunks_per_child=settings.chunks_per_child,
        max_children=settings.max_array_children,
    )
    environment = [
        {"name": "BYOM_JOB_ID", "value": job.job_id},
        {"name": "BYOM_PLAN_KEY", "value": request.plan_key},
        {"name": "BYOM_ARRAY_SIZE", "value": str(plan.children)},
    ]
    trace_header = tracing.current_header()
    if trace_header:
        environment.append({"name": "BYOM_TRACE_HEADER", "value": trace_header})
    submit_args: dict[str, object] = {
        "jobName": f"byom-{job.job_id[:24]}",
        "jobQueue": settings.batch_job_queue,
        "jobDefinition": settings.batch_job_definition,
        "containerOverrides": {"environment": environment},
        "retryStrategy": {"attempts": settings.worker_attempts},
        "timeout": {"attemptDurationSeconds": settings.worker_timeout_seconds},
        "tags": {"byom:job-id": job.job_id},
    }
    if plan.children > 1:
        submit_args["arrayProperties"] = {"size": plan.children}
    response = aws.batch().submit_job(**submit_args)  # type: ignore[arg-type]
    batch_job_id = response["jobId"]
    if store.mark_submitted(job.job_id, batch_job_id) is None:
        # Another delivery of this message submitted first; ours would only redo
        # the same chunks, so stop it rather than pay for it.
        aws.batch().cancel_job(jobId=batch_job_id, reason="duplicate submission")
        log.info("duplicate submission cancelled", extra={"job_id": job.job_id})
        return None
    log.info(
        "array job submitted",
        extra={"job_id": job.job_id, "batch_job_id": batch_job_id, "children": plan.children},
    )
    return batch_job_id
