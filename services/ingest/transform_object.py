"""Ingest of one SageMaker transform object: the API's message in, one planned job out.

The same lifecycle as an upload's (``ingest.py``): the plan goes to staging, the
job item to DynamoDB, and the scheduler is asked to run it; a redelivered
message finds the job by its id (``shared.transform.object_job_id``) and redoes
only the step a crash could have lost. The job's staging lives in byom's bucket
whichever bucket the object and its output are in.

A stop (``StopTransformJob``) can overtake the message: the API cancels the
objects' jobs it finds and counts the others as ended. So ingest plans no object
of a Stopping or Stopped transform job (it counts it as ended, which the store
does once per object), and a job it made while the stop ran, unseen by the API,
it cancels itself instead of scheduling it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from services.ingest.ingest import _reject, _request_schedule, _resume
from services.ingest.plan_transform import plan_transform
from shared import aws, job_control, logs, naming, tracing
from shared.errors import InputError
from shared.formats import JSON_TYPE, JobKind
from shared.jobs import JobStore
from shared.schemas import JobItem, JobState
from shared.settings import get_settings
from shared.transform import TransformObject, TransformStatus, object_job_id
from shared.transform_store import TransformStore

log = logging.getLogger(__name__)

_STOPPED = (TransformStatus.STOPPING, TransformStatus.STOPPED)


def transform_job_item(job_id: str, message: TransformObject) -> JobItem:
    """The job item of a transform object, before it is planned."""
    settings = get_settings()
    now = datetime.now(UTC)
    return JobItem(
        job_id=job_id,
        state=JobState.ACCEPTED,
        bucket=settings.bucket,  # staging; the object's own bucket is in the plan
        input_key=message.key,
        input_etag=message.etag.strip('"'),
        input_size=message.size,
        output_key=message.output_key,
        input_bucket=message.bucket,
        output_bucket=message.output_bucket,
        kind=JobKind.TRANSFORM,
        created_at=now,
        updated_at=now,
        deadline_epoch=int(now.timestamp()) + settings.job_deadline_seconds,
        expires_at=int((now + timedelta(days=settings.job_ttl_days)).timestamp()),
        trace_id=tracing.current_trace_id(),
        transform_job_name=message.transform_job_name,
        transform_index=message.index,
    )


def handle_transform_object(
    message: TransformObject,
    store: JobStore | None = None,
    transforms: TransformStore | None = None,
) -> str | None:
    """Create the job of one transform object; returns its id, or None when the
    transform job was stopped before the object had a job."""
    store = store or JobStore()
    transforms = transforms or TransformStore()
    job_id = object_job_id(message.transform_job_arn, message.index)
    logs.append_job_keys(job_id)
    tracing.tag_current_job(job_id)
    existing = store.get(job_id)
    if existing is not None:
        # A job not yet on Batch is cancelled here (ingest may stop no array); the
        # API's stop cancels any job it finds, this one included.
        if existing.state is JobState.ACCEPTED and _stop_requested(message, transforms):
            _cancel(job_id, message, store)
        else:
            _resume(existing, store)
        return job_id
    if _stop_requested(message, transforms):
        log.info(
            "transform object not planned: its transform job was stopped",
            extra={"transform_job": message.transform_job_name, "index": message.index},
        )
        transforms.object_ended(message.transform_job_name, message.index, failed=False)
        return None
    job = transform_job_item(job_id, message)
    try:
        plan = plan_transform(job_id, message)
    except InputError as exc:
        _reject(job, exc, store)
        return job_id
    plan_key = naming.plan_key(job_id)
    aws.s3().put_object(
        Bucket=job.bucket,
        Key=plan_key,
        Body=plan.model_dump_json().encode(),
        ContentType=JSON_TYPE,
    )
    job = job.model_copy(update={"plan_key": plan_key, "chunk_count": len(plan.chunks)})
    if store.create(job):
        log.info(
            "transform object accepted",
            extra={
                "job_id": job_id,
                "transform_job": message.transform_job_name,
                "index": message.index,
                "chunks": len(plan.chunks),
            },
        )
        # Checked again now that the job exists: a stop that came after the
        # first check may have looked for this job before it was there.
        if _stop_requested(message, transforms):
            _cancel(job_id, message, store)
        else:
            _request_schedule(job)
    else:
        existing = store.get(job_id)
        if existing is not None:
            _resume(existing, store)
    return job_id


def _stop_requested(message: TransformObject, transforms: TransformStore) -> bool:
    record = transforms.get(message.transform_job_name)
    return record is not None and record.status in _STOPPED


def _cancel(job_id: str, message: TransformObject, store: JobStore) -> None:
    """Cancel the object's job as the API's stop does (its ending counts it, once)."""
    job_control.cancel(job_id, f"transform job {message.transform_job_name} was stopped", store)
