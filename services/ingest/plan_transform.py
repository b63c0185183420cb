"""Ingest's planner of a SageMaker transform object (``shared/transform.py``).

The object arrives as the API's message, not as an upload: its settings are the
request's, checked once by the API. A Gzip object is inflated into staging first
(as a ``.gz`` upload is), so it can be cut by byte ranges. SplitType ``Line``
cuts it into line-aligned byte ranges (the workers align them, as for CSV), so
one large object is scored by several array children at once; SplitType
``None`` is one chunk, the whole object one request.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.ingest.inflate import inflate_to
from shared import naming
from shared.csvchunks import plan_ranges
from shared.errors import InputError
from shared.schemas import Chunk, ChunkPlan, TransformSource
from shared.settings import get_settings
from shared.transform import TransformObject


def transform_uri(message: TransformObject) -> str:
    return f"s3://{message.bucket}/{message.key}"


def plan_transform(job_id: str, message: TransformObject) -> ChunkPlan:
    """The chunk plan of one transform object; ``InputError`` when it cannot run."""
    settings = get_settings()
    object_settings = message.settings
    uri = transform_uri(message)
    bucket, key, etag, size = message.bucket, message.key, message.etag, message.size
    if object_settings.compression == "Gzip":
        staged = inflate_to(
            bucket, key, etag, naming.staged_input_key(job_id),
            max_bytes=settings.max_file_bytes, max_ratio=settings.max_compression_ratio,
            uri=uri, target_bucket=settings.bucket,
        )  # fmt: skip
        bucket, key, etag, size = settings.bucket, staged.key, staged.etag, staged.size
    if size == 0:
        raise InputError(uri, "the object is empty (inflated, when Gzip); it holds no record")
    if size > settings.max_file_bytes:
        raise InputError(
            uri,
            f"the object is {size} bytes, over the {settings.max_file_bytes}-byte limit "
            "(BYOM_MAX_FILE_BYTES)",
        )
    payload = object_settings.max_payload_bytes
    if object_settings.split_type == "None" and payload is not None and size > payload:
        # The whole object is one request: it cannot fit, so fail now, not in a worker.
        raise InputError(
            uri,
            f"with SplitType None the whole object is one request, and it is {size} bytes, "
            f"over MaxPayloadInMB ({payload} bytes); use SplitType Line or a larger "
            "MaxPayloadInMB",
        )
    if object_settings.split_type == "Line":
        ranges = plan_ranges(0, size, settings.chunk_bytes)
    else:
        ranges = [(0, size)]
    source = TransformSource(
        settings=object_settings,
        target_model=message.target_model,
        environment=message.environment,
        input_bucket=message.bucket,
        input_key=message.key,
        output_bucket=message.output_bucket,
        output_key=message.output_key,
        transform_job_name=message.transform_job_name,
        transform_index=message.index,
        inference_time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return ChunkPlan(
        job_id=job_id,
        bucket=bucket,
        key=key,
        etag=etag,
        size=size,
        chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
        staging_bucket=settings.bucket,
        source=source,
    )
