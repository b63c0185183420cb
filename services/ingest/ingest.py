"""Ingest: turn one uploaded object into a validated, planned job.

Reads only the head of the object and a small window at each chunk boundary;
the rows themselves are checked by the workers as they score them. A gzip
upload is first inflated into staging, and then planned the same way.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from services.ingest import processing_plan
from services.ingest.images import plan_media
from services.ingest.inflate import GZIP_MAGIC, inflate_to
from shared import aws, logs, media, metrics, model_registry, naming, queues, tracing
from shared.csvchunks import BOM, ReadRange, find_line_end, plan_ranges
from shared.endings import announce
from shared.errors import InputError
from shared.jobs import JobStore, job_id_of, new_job
from shared.model_card import ModelCard
from shared.processing import Format, Processing
from shared.rows import check_rows, header_names
from shared.schemas import (
    BadRows,
    Chunk,
    ChunkPlan,
    JobItem,
    JobState,
    RowPolicy,
    S3ObjectCreatedEvent,
    ScheduleRequest,
)
from shared.settings import get_settings

log = logging.getLogger(__name__)

_HEAD_BYTES = 64 * 1024
POLICY_METADATA = "byom-on-bad-rows"
LIMIT_METADATA = "byom-max-bad-rows"


class ObjectReader:
    """Ranged reads of one object version; a changed object fails instead of mixing."""

    def __init__(self, bucket: str, key: str, etag: str) -> None:
        self.bucket, self.key, self.etag = bucket, key, etag

    def __call__(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = aws.s3().get_object(
            Bucket=self.bucket,
            Key=self.key,
            Range=f"bytes={start}-{end - 1}",
            IfMatch=aws.if_match(self.etag),
        )
        return response["Body"].read()


@dataclass(frozen=True)
class Upload:
    """The uploaded object as S3 has it now (the event's key may be URL-encoded)."""

    bucket: str
    key: str
    etag: str
    size: int
    metadata: dict[str, str]
    last_modified: datetime | None = None
    content_type: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def find_upload(event: S3ObjectCreatedEvent) -> Upload | None:
    """HEAD the object the event names; None if that version is gone (overwritten).

    Ingest may list ``input/``, so S3 says 404 for a missing key and 403 only for
    a real denial, which fails the job with the reason (``UploadDenied``).
    """
    bucket, obj = event.detail.bucket.name, event.detail.object
    etag = obj.etag.strip('"')
    denied: ClientError | None = None
    for key in dict.fromkeys((obj.key, unquote_plus(obj.key))):
        try:
            head = aws.s3().head_object(Bucket=bucket, Key=key, IfMatch=aws.if_match(etag))
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403:
                denied = exc
                continue
            if status in (404, 412):
                continue
            raise
        return Upload(
            bucket,
            key,
            etag,
            head["ContentLength"],
            head.get("Metadata", {}),
            head.get("LastModified"),
            head.get("ContentType", ""),
        )
    if denied is not None:
        raise UploadDenied(f"s3://{bucket}/{obj.key}", denied)
    return None


class UploadDenied(InputError):
    """S3 refused to let ingest read the upload: a permissions problem, not a missing key."""

    def __init__(self, uri: str, error: ClientError) -> None:
        code = error.response.get("Error", {}).get("Code", "AccessDenied")
        super().__init__(
            uri,
            f"S3 denied reading the upload ({code}); check the bucket policy, the object's "
            "owner and its KMS key grant the ingest role s3:GetObject",
        )


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
    if existing is not None and existing.state is not JobState.FAILED:
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
        if not _uploaded_again(existing, upload):
            _resume(existing, store)  # a late duplicate of the failed job's own event
            return job_id
        # The same bytes uploaded again after a FAILED job: that is a retry.
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
        # Formats, filters and joins are for records; images and video have their own plan.
        request = (
            None
            if media.kind_of(upload.key) is not None
            else processing_plan.requested(
                upload.uri, upload.key, upload.content_type, upload.metadata, card
            )
        )
        policy = row_policy(upload)
    except InputError as exc:
        _reject(job, exc, store)
        return job_id
    # The output's name carries its format's extension, so it is claimed once known.
    name_key = (
        upload.key if request is None else processing_plan.output_name_key(upload.key, request)
    )
    job = job.model_copy(
        update={"output_key": store.claim_output_key(job_id, name_key, job.created_at)}
    )
    try:
        if request is None:  # images or video (services/ingest/images.py)
            plan = plan_media(job_id, upload, policy)
        else:
            columns = model_columns(upload, chosen, card)
            plan = plan_job(job_id, upload, policy, columns=columns, request=request, card=card)
    except InputError as exc:
        _reject(job, exc, store)
        return job_id
    if chosen is not None:
        plan = plan.model_copy(update={"model_name": chosen.name, "model_version": chosen.version})
    if card is not None:
        plan = plan.model_copy(
            update={"max_request_rows": card.max_rows, "max_request_bytes": card.max_bytes}
        )

    plan_key = naming.plan_key(job_id)
    aws.s3().put_object(
        Bucket=bucket,
        Key=plan_key,
        Body=plan.model_dump_json().encode(),
        ContentType="application/json",
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
    chosen = upload.metadata.get(POLICY_METADATA, settings.on_bad_rows).strip().lower()
    limit = upload.metadata.get(LIMIT_METADATA, str(settings.max_bad_rows)).strip()
    if chosen not in {p.value for p in BadRows}:
        raise InputError(upload.uri, f"metadata {POLICY_METADATA}={chosen!r}: use 'fail' or 'skip'")
    try:
        max_bad_rows = int(limit)
        if max_bad_rows < -1:
            raise ValueError(limit)
    except ValueError:
        raise InputError(
            upload.uri, f"metadata {LIMIT_METADATA}={limit!r}: use a whole number, -1 for no limit"
        ) from None
    return RowPolicy(on_bad_rows=BadRows(chosen), max_bad_rows=max_bad_rows)


DEFAULT_MODEL = "setting BYOM_DEFAULT_MODEL"


def choose_model(upload: Upload) -> model_registry.ModelRef | None:
    """The registry model and version the upload chose, None for the default model.

    S3 metadata ``byom-model: name`` or ``name:version`` chooses explicitly: a
    model (or version) not in the registry fails the job. Without it, an upload
    under ``input/<name>/`` chooses ``<name>`` when the registry has it; any other
    folder is only a folder. Neither: ``BYOM_DEFAULT_MODEL`` when set (a multi-model
    endpoint has no model of its own), else None. No version: the latest, in
    natural order.
    """
    settings = get_settings()
    text = upload.metadata.get(model_registry.MODEL_METADATA, "").strip()
    folder, sep, _ = upload.key.removeprefix(settings.input_prefix).partition("/")
    if not text and sep:
        chosen = _registry_model(upload, folder, explicit=False)
        if chosen is not None:
            return chosen
    if not text and settings.default_model:
        return _registry_model(upload, settings.default_model, explicit=True, what=DEFAULT_MODEL)
    if not text:
        return None
    return _registry_model(upload, text, explicit=True)


def _registry_model(
    upload: Upload,
    text: str,
    *,
    explicit: bool,
    what: str = f"metadata {model_registry.MODEL_METADATA}",
) -> model_registry.ModelRef | None:
    """`text` (`name` or `name:version`) resolved in the registry. Explicit (metadata or
    the default setting): not found fails the job, naming `what`; a folder name that is
    no model's is only a folder (None)."""
    settings = get_settings()
    registry = f"s3://{upload.bucket}/{settings.models_prefix}"
    try:
        ref = model_registry.parse_ref(text)
    except ValueError as exc:
        if not explicit:
            return None
        raise InputError(upload.uri, f"{what}: {exc}") from None
    try:
        found = model_registry.versions(aws.s3(), upload.bucket, settings.models_prefix, ref.name)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status != 403:
            raise
        if not explicit:  # a role without the registry grant: folders stay folders
            log.warning("cannot list the model registry", extra={"registry": registry})
            return None
        raise InputError(
            upload.uri,
            f"S3 denied listing the model registry {registry}; grant the ingest role "
            f"s3:ListBucket with prefix {settings.models_prefix}*",
        ) from exc
    if not found:
        if not explicit:
            return None
        raise InputError(
            upload.uri,
            f"model {ref.name!r} is not in the model registry {registry} (no "
            f"{ref.name}/<version>/{model_registry.PACKAGE_FILE}); publish it with "
            f"python -m model.publish, or fix {what}",
        )
    if ref.version is None:
        return model_registry.ModelRef(ref.name, model_registry.latest(found))
    if ref.version not in found:
        raise InputError(
            upload.uri,
            f"model {ref.name!r} has no version {ref.version!r} in the model registry "
            f"{registry}; published: {', '.join(found)}",
        )
    return ref


def model_columns(
    upload: Upload, chosen: model_registry.ModelRef | None, card: ModelCard | None = None
) -> int:
    """The row width of the model the job chose, as publish recorded it; else the setting."""
    settings = get_settings()
    if chosen is None:
        return settings.feature_count
    if card is not None and card.feature_count is not None:
        return card.feature_count
    try:
        recorded = model_registry.feature_count(
            aws.s3(), upload.bucket, settings.models_prefix, chosen
        )
    except ClientError as exc:
        # Without s3:GetObject on the registry the width is not known here; the
        # setting applies, as for the default model.
        log.warning("cannot read the model's width", extra={"error": str(exc)})
        return settings.feature_count
    return recorded or settings.feature_count


def plan_job(
    job_id: str,
    upload: Upload,
    policy: RowPolicy,
    read: ReadRange | None = None,
    *,
    columns: int | None = None,
    request: processing_plan.Request | None = None,
    card: ModelCard | None = None,
) -> ChunkPlan:
    """Validate the head of the object and plan its chunks; raises ``InputError``.

    A constant number of S3 requests whatever the size: one GET of the head (a few
    more only for a first line longer than the head), then arithmetic. The
    workers align their chunks to lines themselves. ``read`` replaces the ranged
    reader in tests.
    """
    settings = get_settings()
    columns = columns or settings.feature_count
    uri, size = upload.uri, upload.size
    if size == 0:
        raise InputError(uri, "the file is empty; upload a CSV with one row of features per line")
    if size > settings.max_file_bytes:
        raise InputError(
            uri,
            f"the file is {size} bytes, over the {settings.max_file_bytes}-byte limit "
            "(BYOM_MAX_FILE_BYTES); split it into several uploads",
        )
    key, etag = upload.key, upload.etag
    read = read or ObjectReader(upload.bucket, key, etag)
    head = read(0, min(size, _HEAD_BYTES))
    if head.startswith(GZIP_MAGIC):
        staged = inflate_to(
            upload.bucket, key, etag, naming.staged_input_key(job_id),
            max_bytes=settings.max_file_bytes, max_ratio=settings.max_compression_ratio, uri=uri,
        )  # fmt: skip
        key, etag, size = staged.key, staged.etag, staged.size
        if size == 0:
            raise InputError(uri, "inflates to an empty file")
        read = ObjectReader(upload.bucket, key, etag)
        head = read(0, min(size, _HEAD_BYTES))
    request = request or processing_plan.requested(
        uri, upload.key, upload.content_type, upload.metadata, card
    )
    if request.content is Format.PARQUET:
        parquet, ranges = processing_plan.parquet_processing(
            request, card, read, size,
            chunk_bytes=settings.chunk_bytes, model_columns=columns, uri=uri,
        )  # fmt: skip
        return ChunkPlan(
            job_id=job_id, bucket=upload.bucket, key=key, etag=etag, size=size, header=False,
            columns=columns, policy=policy, processing=parquet,
            chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
        )  # fmt: skip

    data_start = len(BOM) if head.startswith(BOM) else 0
    first_end = find_line_end(
        read, data_start, size, max_line_bytes=settings.max_line_bytes, uri=uri, line=1
    )
    # A first line longer than the head (a wide header) is read whole.
    wide = first_end > len(head)
    line_one = read(data_start, first_end) if wide else head[data_start:first_end]
    names = header_names(line_one) if request.content is not Format.JSONL else None
    processing: Processing | None = None
    if processing_plan.needs_processing(request, card, names):
        if names is not None:
            data_start = first_end
        if data_start >= size:
            raise InputError(uri, "the file has a header but no rows")
        # A header names the columns; without one, line 1 is the first record.
        record = processing_plan.first_record(
            request, names, line_one, uri, line_number=2 if names else 1
        )
        processing = processing_plan.processing(
            request, card, record, model_columns=columns, uri=uri
        )
    elif names is not None:
        if len(names) != columns:
            raise InputError(
                uri,
                f"the first line looks like a header but has {len(names)} columns; "
                f"the model takes {columns} features",
                line=1,
            )
        data_start = first_end
    if data_start >= size:
        raise InputError(uri, "the file has a header but no rows")

    if policy.on_bad_rows is BadRows.FAIL and processing is None:
        # Check the complete lines of the head now, so a file with the wrong shape
        # fails in seconds with a precise position instead of inside a worker.
        head_rows = head[data_start:]
        if len(head) < size:
            head_rows = head_rows[: head_rows.rfind(b"\n") + 1]
        check_rows(head_rows, first_line=2 if names else 1, columns=columns, uri=uri)
    ranges = plan_ranges(data_start, size, settings.chunk_bytes)
    # A header carried to the output; the processing path builds its own.
    output_header = None
    if names is not None and processing is None:
        output_header = processing_plan.prediction_names(card)
    return ChunkPlan(
        job_id=job_id,
        bucket=upload.bucket,
        key=key,
        etag=etag,
        size=size,
        header=names is not None,
        data_start=data_start,
        columns=columns,
        policy=policy,
        chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
        processing=processing,
        output_header=output_header,
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


def _uploaded_again(failed: JobItem, upload: Upload) -> bool:
    """Whether ``upload`` is a later upload than the one the FAILED job scored.

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
