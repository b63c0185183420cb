"""Score one chunk of a real file: the plan's formats, filters and joins (``Processing``).

The same steps as a plain chunk (``scoring.py``): one ranged read, one parse,
requests fanned out to the endpoint, one output object in staging. A CSV or
JSON Lines chunk is aligned to lines by the same reader; a Parquet chunk is a
run of row groups, read with two ranged GETs (its row groups' bytes and the
footer). The bad-row policy and the errors report are the plain chunk's.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from services.inference_worker import joined
from services.inference_worker.endpoint import Endpoint
from services.inference_worker.parquet_records import SparseFile, read_parquet_records
from services.inference_worker.parse import shift_lines
from services.inference_worker.records import Records, read_line_records
from services.inference_worker.scoring import (
    ChunkResult,
    get_range,
    line_number_at,
    npy_requests,
    predict,
    read_lines,
    store_chunk,
)
from shared.csvchunks import split_records
from shared.formats import NPY_TYPE
from shared.parquet_footer import MAGIC
from shared.processing import MEDIA_TYPE, Format, Processing
from shared.schemas import Chunk, ChunkPlan

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

NPY = NPY_TYPE
_PARQUET_TAIL = 64 * 1024


async def _read_parquet(s3: S3Client, plan: ChunkPlan, chunk: Chunk, uri: str) -> Records:
    processing = plan.processing
    assert processing is not None and processing.parquet is not None
    layout = processing.parquet
    span = layout.spans[chunk.index]
    # pyarrow opens a file by reading its last 64 KiB, footer or not: fetch that much.
    tail_start = max(0, min(layout.footer_start, plan.size - _PARQUET_TAIL))
    body, tail = await asyncio.gather(
        get_range(s3, plan, chunk.start, chunk.end), get_range(s3, plan, tail_start, plan.size)
    )
    source = SparseFile(plan.size, {0: MAGIC, chunk.start: body, tail_start: tail})
    return await asyncio.to_thread(
        read_parquet_records, source, processing, first=span.first, count=span.count, uri=uri
    )


async def _read_line_chunk(
    s3: S3Client, plan: ChunkPlan, chunk: Chunk, *, max_line_bytes: int, uri: str
) -> Records:
    processing = plan.processing
    assert processing is not None
    first, data = await read_lines(s3, plan, chunk, max_line_bytes=max_line_bytes, uri=uri)
    records = await asyncio.to_thread(
        read_line_records, data, processing, uri=uri, max_line_bytes=max_line_bytes
    )
    if records.rejected:
        first_line = await line_number_at(s3, plan, first)
        records.rejected = shift_lines(records.rejected, first_line - 1)
    return records


def csv_requests(values: np.ndarray, request_bytes: int, max_rows: int | None) -> list[bytes]:
    """The features as CSV text (formatted in C++) for endpoints that read only CSV."""
    table = pa.table({f"f{i}": values[:, i] for i in range(values.shape[1])})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return split_records(buffer.getvalue(), request_bytes, max_rows)


def format_output(
    processing: Processing,
    plan: ChunkPlan,
    chunk: Chunk,
    records: Records,
    answer: bytes,
    scored_at: datetime,
) -> bytes:
    rows = len(records.good)
    predictions = joined.prediction_columns(answer, rows)
    if not predictions:
        # No good record: empty columns, as many as the model's names, so the
        # output filter and the header count the same columns as in other chunks.
        predictions = [pa.array([], pa.string()) for _ in processing.prediction_names]
    extra = joined.extra_columns(processing, plan, predictions, rows, scored_at)
    if processing.accept is Format.JSONL:
        return joined.jsonl_records(processing, records, predictions, extra)
    if processing.accept is Format.PARQUET:
        return joined.parquet_records(processing, records, predictions, extra)
    body, names = joined.csv_records(processing, records, predictions, extra)
    if processing.header and chunk.index == 0:
        body = joined.header_line(names) + body
    return body


async def score_processed(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    request_bytes: int,
    max_rows: int | None,
    max_line_bytes: int,
    uri: str,
    content_type: str = NPY,
) -> ChunkResult:
    processing = plan.processing
    assert processing is not None
    if processing.content is Format.PARQUET:
        records = await _read_parquet(s3, plan, chunk, uri)
    else:
        records = await _read_line_chunk(s3, plan, chunk, max_line_bytes=max_line_bytes, uri=uri)
    plan.policy.enforce(records.rejected, uri=uri, what="bad records in one chunk")
    if content_type == NPY:
        bodies = npy_requests(records.values, request_bytes, max_rows)
    else:
        bodies = csv_requests(records.values, request_bytes, max_rows)
    answer = await predict(endpoint, bodies, content_type, len(records.values))
    output = await asyncio.to_thread(
        format_output, processing, plan, chunk, records, answer, datetime.now(UTC)
    )
    return await store_chunk(
        s3, plan, chunk, output, rows=records.rows, rejected=records.rejected,
        content_type=MEDIA_TYPE[processing.accept],
    )  # fmt: skip
