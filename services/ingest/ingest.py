"""Ingest: turn one uploaded object into a validated, planned job.

Reads only the head of the object and a small window at each chunk boundary;
the rows themselves are checked by the workers as they score them.
"""

from __future__ import annotations

import logging

from shared import aws, naming, queues
from shared.csvchunks import BOM, find_line_end, plan_ranges
from shared.endings import announce
from shared.errors import InputError
from shared.jobs import JobStore, job_id_of, new_job
from shared.rows import check_rows, looks_like_header
from shared.schemas import (
    Chunk,
    ChunkPlan,
    JobItem,
    JobState,
    S3ObjectCreatedEvent,
    ScheduleRequest,
)
from shared.settings import get_settings

log = logging.getLogger(__name__)

_HEAD_BYTES = 64 * 1024


class ObjectReader:
    """Ranged reads of one object version; a changed object fails instead of mixing."""

    def __init__(self, bucket: str, key: str, etag: str) -> None:
        self.bucket, self.key, self.etag = bucket, key, etag

    def __call__(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = aws.s3().get_object(
            Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}", IfMatch=self.etag
        )
        return response["Body"].read()


def handle_upload(event: S3ObjectCreatedEvent, store: JobStore | None = None) -> str | None:
    """Create the job for one upload; returns its id, or None when it is not ours."""
    settings = get_settings()
    store = store or JobStore()
    bucket, obj = event.detail.bucket.name, event.detail.object
    if bucket != settings.bucket or not obj.key.startswith(settings.input_prefix):
        log.info("ignoring object outside input/", extra={"bucket": bucket, "key": obj.key})
        return None
    etag = obj.etag.strip('"')
    job_id = job_id_of(event)
    existing = store.get(job_id)
    if existing is not None:
        _resume(existing)
        return job_id

    job = new_job(event)
    now = job.created_at
    uri = f"s3://{bucket}/{obj.key}"
    try:
        plan = plan_job(job_id, bucket, obj.key, etag, obj.size, uri)
    except InputError as exc:
        failed = job.model_copy(
            update={"state": JobState.FAILED, "error": exc.describe(), "finished_at": now}
        )
        if store.create(failed):
            log.warning("rejected upload", extra={"job_id": job_id, "error": exc.describe()})
            announce(failed, store)
        return job_id

    plan_key = naming.plan_key(job_id)
    aws.s3().put_object(
        Bucket=bucket,
        Key=plan_key,
        Body=plan.model_dump_json().encode(),
        ContentType="application/json",
    )
    job = job.model_copy(update={"plan_key": plan_key, "chunk_count": len(plan.chunks)})
    if store.create(job):
        log.info(
            "job accepted",
            extra={"job_id": job_id, "key": obj.key, "chunks": len(plan.chunks)},
        )
        _request_schedule(job)
    else:
        existing = store.get(job_id)
        if existing is not None:
            _resume(existing)
    return job_id


def plan_job(job_id: str, bucket: str, key: str, etag: str, size: int, uri: str) -> ChunkPlan:
    """Validate the head of the object and plan its chunks; raises ``InputError``."""
    settings = get_settings()
    if size == 0:
        raise InputError(uri, "the file is empty; upload a CSV with one row of features per line")
    if size > settings.max_file_bytes:
        raise InputError(
            uri,
            f"the file is {size} bytes, over the {settings.max_file_bytes}-byte limit "
            "(BYOM_MAX_FILE_BYTES); split it into several uploads",
        )
    read = ObjectReader(bucket, key, etag)
    head = read(0, min(size, _HEAD_BYTES))
    data_start = len(BOM) if head.startswith(BOM) else 0
    first_end = find_line_end(
        read, data_start, size, max_line_bytes=settings.max_line_bytes, uri=uri
    )
    header = looks_like_header(head[data_start:first_end])
    if header:
        data_start = first_end
    if data_start >= size:
        raise InputError(uri, "the file has a header but no rows")

    # Check the complete lines of the head now, so a file with the wrong shape
    # fails in seconds with a precise position instead of inside a worker.
    head_rows = head[data_start:]
    if len(head) < size:
        head_rows = head_rows[: head_rows.rfind(b"\n") + 1]
    check_rows(
        head_rows,
        first_line=2 if header else 1,
        columns=settings.feature_count,
        uri=uri,
    )
    ranges = plan_ranges(
        read,
        size,
        data_start=data_start,
        chunk_bytes=settings.chunk_bytes,
        max_line_bytes=settings.max_line_bytes,
        uri=uri,
    )
    return ChunkPlan(
        job_id=job_id,
        bucket=bucket,
        key=key,
        etag=etag,
        size=size,
        header=header,
        chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
    )


def _request_schedule(job: JobItem) -> None:
    assert job.plan_key is not None
    queues.send(
        get_settings().scheduler_queue_url,
        ScheduleRequest(job_id=job.job_id, chunk_count=job.chunk_count, plan_key=job.plan_key),
    )


def _resume(job: JobItem) -> None:
    """A duplicate event for a known job: redo only the step a crash could have lost."""
    if job.state is JobState.ACCEPTED:
        _request_schedule(job)
    elif job.state.terminal:
        announce(job, JobStore())
    log.info("duplicate upload event", extra={"job_id": job.job_id, "state": job.state.value})
