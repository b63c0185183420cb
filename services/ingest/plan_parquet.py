"""Ingest's planner of Parquet tables: the footer alone, row groups as chunks."""

from __future__ import annotations

from services.ingest import processing_plan
from services.ingest.planning import Planning
from shared.schemas import Chunk, ChunkPlan, ParquetSource
from shared.settings import get_settings


def plan_parquet(planning: Planning) -> ChunkPlan:
    """Consecutive row groups up to BYOM_CHUNK_BYTES a chunk, read from the footer."""
    processing, ranges = processing_plan.parquet_processing(
        planning.request, planning.card, planning.read, planning.size,
        chunk_bytes=get_settings().chunk_bytes, model_columns=planning.columns,
        uri=planning.upload.uri,
    )  # fmt: skip
    upload = planning.upload
    return ChunkPlan(
        job_id=planning.job_id, bucket=upload.bucket, key=planning.key, etag=planning.etag,
        size=planning.size, columns=planning.columns, policy=planning.policy,
        chunks=tuple(Chunk(index=i, start=s, end=e) for i, (s, e) in enumerate(ranges)),
        source=ParquetSource(processing=processing),
    )  # fmt: skip
