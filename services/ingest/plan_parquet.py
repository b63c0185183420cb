"""Ingest's planner of Parquet tables: the footer alone, row groups as chunks.

Two ranged GETs (the footer's length, then the footer), no pyarrow: the columns,
their types and each row group's byte span come from ``shared/parquet_footer.py``.
"""

from __future__ import annotations

from services.ingest import processing_plan
from services.ingest.planning import Planning
from shared.csvchunks import ReadRange
from shared.errors import InputError
from shared.model_card import ModelCard
from shared.parquet_footer import NUMERIC_TYPES, TYPE_NAMES, read_footer
from shared.processing import ParquetLayout, Processing, RowGroupSpan
from shared.schemas import Chunk, ChunkPlan, ParquetSource
from shared.settings import get_settings


def plan_parquet(planning: Planning) -> ChunkPlan:
    """Consecutive row groups up to BYOM_CHUNK_BYTES a chunk, read from the footer."""
    processing, ranges = parquet_processing(
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


def parquet_processing(
    request: processing_plan.Request,
    card: ModelCard | None,
    read: ReadRange,
    size: int,
    *,
    chunk_bytes: int,
    model_columns: int,
    uri: str,
) -> tuple[Processing, list[tuple[int, int]]]:
    """Processing and chunk byte ranges of a Parquet upload: row groups as chunks.

    Consecutive row groups go into one chunk until it holds ``chunk_bytes``; a
    chunk's range spans its row groups' column chunks, which the worker reads
    with one ranged GET beside the footer.
    """
    footer = read_footer(read, size, uri=uri)  # FooterError names the file and the fault
    if footer.nested:
        raise InputError(uri, "has nested columns (structs, lists or maps); byom reads flat tables")
    if not footer.row_groups or footer.rows == 0:
        raise InputError(uri, "the Parquet file has no rows")
    record = processing_plan.FirstRecord("rows", len(footer.columns), footer.columns)
    result = processing_plan.processing(request, card, record, model_columns=model_columns, uri=uri)
    for position in result.features:
        annotation = footer.annotations[position] if footer.annotations else None
        if footer.types[position] not in NUMERIC_TYPES or annotation is not None:
            kind = (
                TYPE_NAMES.get(footer.types[position], str(footer.types[position]))
                if footer.types[position] not in NUMERIC_TYPES
                else str(annotation)
            )
            raise InputError(
                uri,
                f"column {footer.columns[position]!r} is a feature but holds {kind}, not numbers; "
                f"choose the features with {processing_plan.INPUT_FILTER}",
            )
    spans: list[RowGroupSpan] = []
    ranges: list[tuple[int, int]] = []
    first = first_row = 0
    while first < len(footer.row_groups):
        last = first
        while (
            last + 1 < len(footer.row_groups)
            and footer.row_groups[last + 1].end - footer.row_groups[first].start <= chunk_bytes
        ):
            last += 1
        members = footer.row_groups[first : last + 1]
        rows = sum(group.rows for group in members)
        spans.append(RowGroupSpan(first=first, count=len(members), first_row=first_row, rows=rows))
        ranges.append((members[0].start, members[-1].end))
        first, first_row = last + 1, first_row + rows
    layout = ParquetLayout(footer_start=footer.start, spans=tuple(spans))
    return result.model_copy(update={"parquet": layout}), ranges
