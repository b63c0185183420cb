"""The worker's scorer of each job kind: one row of a table, chosen by the plan's kind.

The kind was decided once, at ingest, and written into the plan; the worker only
looks it up here. Each scorer reads a chunk, asks the endpoint, and stores the
chunk's output in staging (``scoring.store_chunk``). Heavy libraries (pyarrow's
JSON and Parquet readers, Pillow, PyAV) are imported by the scorers that need
them, when a job of that kind first runs.

Adding a kind: a module with its scorer, and a row in ``SCORERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from services.inference_worker.endpoint import Endpoint
from services.inference_worker.scoring import ChunkResult, score_chunk
from shared.formats import JobKind
from shared.schemas import Chunk, ChunkPlan
from shared.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class Scorer(Protocol):
    async def __call__(
        self,
        s3: S3Client,
        endpoint: Endpoint,
        plan: ChunkPlan,
        chunk: Chunk,
        *,
        uri: str,
        output_key: str,
        settings: Settings,
    ) -> ChunkResult: ...


async def score_rows(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    """CSV rows: parsed once into float32 (``scoring.py``); with processing settings
    (filters, joins, another output format) read into columns (``processed.py``)."""
    if plan.processing is not None:
        return await score_table(
            s3, endpoint, plan, chunk, uri=uri, output_key=output_key, settings=settings
        )
    return await score_chunk(
        s3,
        endpoint,
        plan,
        chunk,
        columns=plan.columns or settings.feature_count,
        request_bytes=settings.request_bytes,
        max_line_bytes=settings.max_line_bytes,
        uri=uri,
        content_type=settings.endpoint_content_type,
    )


async def score_table(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    """JSON Lines records and Parquet row groups: read into columns by pyarrow."""
    from services.inference_worker.processed import score_processed

    request_bytes, max_rows = plan.request_limits(settings.request_bytes)
    return await score_processed(
        s3, endpoint, plan, chunk, request_bytes=request_bytes, max_rows=max_rows,
        max_line_bytes=settings.max_line_bytes, uri=uri,
        content_type=settings.endpoint_content_type,
    )  # fmt: skip


async def score_media(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    """Images and video: decoded, resized and detected (``images.py``)."""
    from services.inference_worker.images import score_media_chunk

    return await score_media_chunk(
        s3, endpoint, plan, chunk, uri=uri, output_key=output_key, settings=settings
    )


async def score_transform(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    """A SageMaker transform object: raw records, sent, joined and filtered as
    SageMaker does (``transform.py``)."""
    from services.inference_worker.transform import score_transform as score

    return await score(s3, endpoint, plan, chunk, uri=uri, output_key=output_key, settings=settings)


SCORERS: dict[JobKind, Scorer] = {
    JobKind.ROWS: score_rows,
    JobKind.RECORDS: score_table,
    JobKind.PARQUET: score_table,
    JobKind.MEDIA: score_media,
    JobKind.TRANSFORM: score_transform,
}
