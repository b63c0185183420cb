"""Score one chunk: fetch its byte range, check it, fan out requests, store predictions."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from services.inference_worker.endpoint import Endpoint
from shared import naming
from shared.csvchunks import count_lines, split_records
from shared.errors import ByomError, InputError
from shared.rows import check_rows
from shared.schemas import Chunk, ChunkPlan

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


ROWS_METADATA = "byom-rows"


@dataclass(frozen=True)
class ChunkResult:
    rows: int
    output_key: str
    output_bytes: int


def _parses_cleanly(data: bytes, columns: int, rows: int) -> bool:
    """Vectorised check that ``data`` is ``rows`` x ``columns`` finite numbers."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            header=None,
            dtype=np.float64,
            engine="c",
            skip_blank_lines=False,
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False
    values = frame.to_numpy()
    return values.shape == (rows, columns) and bool(np.isfinite(values).all())


async def _line_number_at(s3: S3Client, plan: ChunkPlan, offset: int) -> int:
    """1-based line number of the line starting at ``offset`` (only on the error path)."""
    if offset == 0:
        return 1
    response = await s3.get_object(
        Bucket=plan.bucket, Key=plan.key, Range=f"bytes=0-{offset - 1}", IfMatch=plan.etag
    )
    newlines = 0
    async for block in response["Body"].iter_chunks(1024 * 1024):
        newlines += block.count(b"\n")
    return newlines + 1


async def validate(s3: S3Client, plan: ChunkPlan, chunk: Chunk, data: bytes, columns: int) -> int:
    """Return the chunk's row count, or raise ``InputError`` naming line and column."""
    rows = count_lines(data)
    if await asyncio.to_thread(_parses_cleanly, data, columns, rows):
        return rows
    uri = f"s3://{plan.bucket}/{plan.key}"
    first_line = await _line_number_at(s3, plan, chunk.start)
    check_rows(data, first_line=first_line, columns=columns, uri=uri)
    raise InputError(uri, "rows could not be read as numeric CSV", line=first_line)


async def score_chunk(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    columns: int,
    request_bytes: int,
) -> ChunkResult:
    response = await s3.get_object(
        Bucket=plan.bucket,
        Key=plan.key,
        Range=f"bytes={chunk.start}-{chunk.end - 1}",
        IfMatch=plan.etag,
    )
    data = await response["Body"].read()
    rows = await validate(s3, plan, chunk, data, columns)
    pieces = split_records(data, request_bytes)
    answers = await asyncio.gather(*(endpoint.invoke_csv(piece) for piece in pieces))
    for piece, answer in zip(pieces, answers, strict=True):
        if count_lines(answer) != count_lines(piece):
            raise ByomError(
                f"the endpoint returned {count_lines(answer)} predictions "
                f"for {count_lines(piece)} rows"
            )
    output = b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    await s3.put_object(
        Bucket=plan.bucket,
        Key=key,
        Body=output,
        ContentType="text/csv",
        Metadata={ROWS_METADATA: str(rows)},
    )
    return ChunkResult(rows=rows, output_key=key, output_bytes=len(output))


async def finished_earlier(s3: S3Client, plan: ChunkPlan, chunk: Chunk) -> ChunkResult | None:
    """The chunk's stored result from an earlier attempt, if that attempt got so far."""
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    try:
        head = await s3.head_object(Bucket=plan.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    rows = head.get("Metadata", {}).get(ROWS_METADATA)
    if rows is None:
        return None
    return ChunkResult(rows=int(rows), output_key=key, output_bytes=head["ContentLength"])
