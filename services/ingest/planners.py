"""Ingest's planner of each job kind, one row of a table, and the steps all share.

The kind is decided once, here (``shared/formats.py``: the name for media, else
the format the metadata, extension or Content-Type says), and recorded in the
plan and on the job item; no later service decides it again. A planner reads
what it needs of the upload (the head of a line file, a Parquet footer, a
manifest) and returns the chunk plan.

Adding a kind: a module with its planner, and a row in ``PLANNERS``.
"""

from __future__ import annotations

from collections.abc import Callable

from services.ingest import processing_plan
from services.ingest.images import plan_media
from services.ingest.inflate import GZIP_MAGIC, inflate_to
from services.ingest.plan_lines import plan_lines
from services.ingest.plan_parquet import plan_parquet
from services.ingest.planning import HEAD_BYTES, Planning
from services.ingest.upload import ObjectReader, Upload
from shared import naming
from shared.csvchunks import ReadRange
from shared.errors import InputError
from shared.formats import JobKind, kind_of
from shared.model_card import ModelCard
from shared.schemas import ChunkPlan, RowPolicy
from shared.settings import get_settings

Planner = Callable[[Planning], ChunkPlan]


def _media(planning: Planning) -> ChunkPlan:
    return plan_media(planning.job_id, planning.upload, planning.policy)


PLANNERS: dict[JobKind, Planner] = {
    JobKind.ROWS: plan_lines,
    JobKind.RECORDS: plan_lines,
    JobKind.PARQUET: plan_parquet,
    JobKind.MEDIA: _media,
}


def job_kind(upload: Upload, request: processing_plan.Request | None) -> JobKind:
    """The upload's kind: media by name, else the kind of its detected format."""
    return kind_of(upload.key, request.content if request is not None else None)


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
    if job_kind(upload, request) is JobKind.MEDIA:
        return plan_media(job_id, upload, policy)
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
    head = read(0, min(size, HEAD_BYTES))
    if head.startswith(GZIP_MAGIC):
        staged = inflate_to(
            upload.bucket, key, etag, naming.staged_input_key(job_id),
            max_bytes=settings.max_file_bytes, max_ratio=settings.max_compression_ratio, uri=uri,
        )  # fmt: skip
        key, etag, size = staged.key, staged.etag, staged.size
        if size == 0:
            raise InputError(uri, "inflates to an empty file")
        read = ObjectReader(upload.bucket, key, etag)
        head = read(0, min(size, HEAD_BYTES))
    request = request or processing_plan.requested(
        uri, upload.key, upload.content_type, upload.options.processing(), card
    )
    planning = Planning(
        job_id=job_id, upload=upload, policy=policy, read=read, key=key, etag=etag, size=size,
        head=head, columns=columns, request=request, card=card,
    )  # fmt: skip
    return PLANNERS[job_kind(upload, request)](planning)
