"""Ingest: turn one uploaded object into a validated, planned job (the job's lifecycle).

One S3 event in, one job item out: the upload is read (``upload.py``), its model
chosen (``model_choice.py``), its kind decided once and its chunks planned by
that kind's planner (``planners.py``); the plan goes to staging, the job item to
DynamoDB, and the scheduler is asked to run it. A duplicate event redoes only
the step a crash could have lost; the same bytes uploaded again after a FAILED
or CANCELLED job make a new job.
"""

from __future__ import annotations

import hashlib
import logging

from services.ingest import processing_plan
from services.ingest.model_choice import DEFAULT_MODEL, choose_model, model_columns
from services.ingest.planners import job_kind, plan_job
from services.ingest.upload import ObjectReader, Upload, UploadDenied, find_upload
from shared import aws, logs, metrics, naming, queues, tracing
from shared.endings import announce
from shared.errors import InputError
from shared.formats import JSON_TYPE, media_source, output_format
from shared.jobs import RETRYABLE, JobStore, job_id_of, new_job
from shared.options import MAX_BAD_ROWS, ON_BAD_ROWS
from shared.schemas import (
    JobItem,
    JobState,
    RowPolicy,
    S3ObjectCreatedEvent,
    ScheduleRequest,
)
from shared.settings import get_settings

log = logging.getLogger(__name__)

# The names callers have always imported from here.
POLICY_METADATA = ON_BAD_ROWS
LIMIT_METADATA = MAX_BAD_ROWS
__all__ = [
    "DEFAULT_MODEL",
    "InputError",
    "ObjectReader",
    "Upload",
    "choose_model",
    "find_upload",
    "handle_upload",
    "model_columns",
    "plan_job",
    "retry_job_id",
    "reuploaded",
    "row_policy",
]


def handle_upload(event: S3ObjectCreatedEvent, store: JobStore | None = None) -> str | None:
    """Create the job for one upload; returns its id, or None when it is not ours."""
    settings = get_settings()
    store = store or JobStore()
    bucket, key = event.detail.bucket.name, event.detail.object.key
    if bucket != settings.bucket or not key.startswith(settings.input_prefix):
        log.info("ignoring object outside input/", extra={"bucket": bucket, "key": key})
        return None
    job_id = job_id_of(event)
    logs.append_job_keys(job_id)
    tracing.tag_current_job(job_id)
    existing = store.get(job_id)
    if existing is not None and existing.state not in RETRYABLE:
        _resume(existing, store)
        return job_id
    try:
        upload = find_upload(event)
    except UploadDenied as exc:
        if existing is None:
            _reject(new_job(event), exc, store)
        return job_id
    if upload is None:
        # Overwritten or deleted since: the newer version has an event of its own.
        log.info("upload no longer there; skipped", extra={"key": key, "job_id": job_id})
        return None
    if existing is not None:
        if not reuploaded(existing, upload):
            _resume(existing, store)  # a late duplicate of the ended job's own event
            return job_id
        # The same bytes uploaded again after a FAILED or CANCELLED job: a new job.
        job_id = retry_job_id(job_id, upload)
        logs.append_job_keys(job_id)
        retried = store.get(job_id)
        if retried is not None:
            _resume(retried, store)
            return job_id

    job = new_job(event).model_copy(
        update={
            "job_id": job_id,
            "input_key": upload.key,
            "input_last_modified": upload.last_modified,
        }
    )
    try:
        chosen = choose_model(upload)
        if chosen is not None:
            job = job.model_copy(
                update={"model_name": chosen.name, "model_version": chosen.version}
            )
        card = processing_plan.read_card(upload.uri, upload.bucket, chosen)
        # Formats, filters and joins are for tables; images and video have their own plan.
        request = (
            None
            if media_source(upload.key) is not None
            else processing_plan.requested(
                upload.uri, upload.key, upload.content_type, upload.options.processing(), card
            )
        )
        policy = row_policy(upload)
    except InputError as exc:
        _reject(job, exc, store)
        return job_id
    # The kind is decided here, once; the output's name carries its format's
    # extension, so it is claimed once that is known.
    kind = job_kind(upload, request)
    name_key = (
        upload.key if request is None else processing_plan.output_name_key(upload.key, request)
    )
    job = job.model_copy(
        update={
            "kind": kind,
            "output_format": output_format(kind, request.accept if request else None),
            "output_key": store.claim_output_key(job_id, name_key, job.created_at),
        }
    )
    try:
        columns = model_columns(upload, chosen, card) if request is not None else None
        plan = plan_job(job_id, upload, policy, columns=columns, request=request, card=card)
    except InputError as exc:
        _reject(job, exc, store)
        return job_id
    plan = plan.model_copy(
        update={
            "model_name": chosen.name if chosen else None,
            "model_version": chosen.version if chosen else None,
            "max_request_rows": card.max_rows if card else None,
            "max_request_bytes": card.max_bytes if card else None,
        }
    )

    plan_key = naming.plan_key(job_id)
    aws.s3().put_object(
        Bucket=bucket,
        Key=plan_key,
        Body=plan.model_dump_json().encode(),
        ContentType=JSON_TYPE,
    )
    job = job.model_copy(
        update={"plan_key": plan_key, "chunk_count": len(plan.chunks), "policy": policy}
    )
    if store.create(job):
        log.info("job accepted", extra={"job_id": job_id, "key": key, "chunks": len(plan.chunks)})
        _request_schedule(job)
    else:
        existing = store.get(job_id)
        if existing is not None:
            _resume(existing, store)
    return job_id


def row_policy(upload: Upload) -> RowPolicy:
    """The job's bad-row policy: the upload's metadata, else the settings."""
    settings = get_settings()
    return upload.options.row_policy(
        upload.uri, default=settings.on_bad_rows, default_limit=settings.max_bad_rows
    )


def _reject(job: JobItem, error: InputError, store: JobStore) -> None:
    """The upload cannot be scored: record the job as FAILED with why, and announce it."""
    failed = job.model_copy(
        update={"state": JobState.FAILED, "error": error.describe(), "finished_at": job.created_at}
    )
    if store.create(failed):
        metrics.failure("input")
        log.warning("rejected upload", extra={"job_id": job.job_id, "error": error.describe()})
        announce(failed, store)


def reuploaded(existing: JobItem, upload: Upload) -> bool:
    """Whether ``upload`` makes a new job rather than being the existing job's own:
    the existing job FAILED or was CANCELLED (it may be run again), and ``upload``
    is a later upload of the same bytes. ``byom`` names an upload's job by this rule too.
    """
    return existing.state in RETRYABLE and _uploaded_again(existing, upload)


def _uploaded_again(failed: JobItem, upload: Upload) -> bool:
    """Whether ``upload`` is a later upload than the one the ended job scored.

    S3 keeps LastModified to the second, so a second upload within the same
    second as the first is taken for a duplicate event of it.
    """
    if upload.last_modified is None:
        return False
    if failed.input_last_modified is not None:
        return upload.last_modified != failed.input_last_modified
    return upload.last_modified > failed.created_at


def retry_job_id(failed_job_id: str, upload: Upload) -> str:
    """Deterministic per upload, so the retry's own duplicate events find it."""
    assert upload.last_modified is not None
    identity = f"{failed_job_id}\n{upload.last_modified.isoformat()}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _request_schedule(job: JobItem) -> None:
    assert job.plan_key is not None
    queues.send(
        get_settings().scheduler_queue_url,
        ScheduleRequest(job_id=job.job_id, chunk_count=job.chunk_count, plan_key=job.plan_key),
    )


def _resume(job: JobItem, store: JobStore) -> None:
    """A duplicate event for a known job: redo only the step a crash could have lost."""
    if job.state is JobState.ACCEPTED:
        _request_schedule(job)
    elif job.state.terminal:
        announce(job, store)
    log.info("duplicate upload event", extra={"job_id": job.job_id, "state": job.state.value})
