"""Score one chunk: fetch its byte range, check it, fan out requests, store predictions."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from services.inference_worker.endpoint import Endpoint
from shared import aws, naming
from shared.csvchunks import count_lines, split_records
from shared.errors import ByomError, InputError
from shared.rows import find_problems, split_lines
from shared.schemas import BadRows, Chunk, ChunkPlan

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

ROWS_METADATA = "byom-rows"
BAD_ROWS_METADATA = "byom-bad-rows"


@dataclass(frozen=True)
class ChunkResult:
    rows: int
    output_key: str
    output_bytes: int
    bad_rows: int = 0


@dataclass(frozen=True)
class CheckedChunk:
    """A chunk's rows split into what goes to the model and what was rejected."""

    rows: int
    payload: bytes  # the good rows, as CSV
    rejected: dict[int, InputError] = field(default_factory=dict)  # row index -> problem


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
        Bucket=plan.bucket,
        Key=plan.key,
        Range=f"bytes=0-{offset - 1}",
        IfMatch=aws.if_match(plan.etag),
    )
    newlines = 0
    async for block in response["Body"].iter_chunks(1024 * 1024):
        newlines += block.count(b"\n")
    return newlines + 1


async def check_chunk(
    s3: S3Client, plan: ChunkPlan, chunk: Chunk, data: bytes, *, columns: int, uri: str
) -> CheckedChunk:
    """Sort the chunk's rows, or raise ``InputError`` at the first bad one (FAIL policy)."""
    rows = count_lines(data)
    if await asyncio.to_thread(_parses_cleanly, data, columns, rows):
        return CheckedChunk(rows=rows, payload=data)
    first_line = await _line_number_at(s3, plan, chunk.start)
    problems = dict(find_problems(data, first_line=first_line, columns=columns, uri=uri))
    if not problems:
        raise InputError(uri, "rows could not be read as numeric CSV", line=first_line)
    if plan.policy.on_bad_rows is BadRows.FAIL:
        raise next(iter(problems.values()))
    if plan.policy.too_many(len(problems)):
        first = next(iter(problems.values()))
        raise InputError(
            uri,
            f"{len(problems)} bad rows in lines {first_line}-{first_line + rows - 1}, over the "
            f"limit of {plan.policy.max_bad_rows}; the first: {first.describe()}",
        )
    lines = split_lines(data)
    payload = b"".join(line + b"\n" for i, line in enumerate(lines) if i not in problems)
    return CheckedChunk(rows=rows, payload=payload, rejected=problems)


def _with_blanks(predictions: bytes, rows: int, rejected: dict[int, InputError]) -> bytes:
    """Put an empty line where each rejected row was, so output lines match input lines."""
    scored = iter(predictions.split(b"\n"))
    return b"".join(b"\n" if i in rejected else next(scored) + b"\n" for i in range(rows))


def errors_csv(rejected: dict[int, InputError]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for problem in rejected.values():
        writer.writerow([problem.line, problem.column or "", problem.reason])
    return buffer.getvalue().encode()


async def score_chunk(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    columns: int,
    request_bytes: int,
    uri: str,
) -> ChunkResult:
    response = await s3.get_object(
        Bucket=plan.bucket,
        Key=plan.key,
        Range=f"bytes={chunk.start}-{chunk.end - 1}",
        IfMatch=aws.if_match(plan.etag),
    )
    data = await response["Body"].read()
    checked = await check_chunk(s3, plan, chunk, data, columns=columns, uri=uri)
    pieces = split_records(checked.payload, request_bytes)
    answers = await asyncio.gather(*(endpoint.invoke_csv(piece) for piece in pieces))
    for piece, answer in zip(pieces, answers, strict=True):
        if count_lines(answer) != count_lines(piece):
            raise ByomError(
                f"the endpoint returned {count_lines(answer)} predictions "
                f"for {count_lines(piece)} rows"
            )
    output = b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
    if checked.rejected:
        output = _with_blanks(output, checked.rows, checked.rejected)
        await s3.put_object(
            Bucket=plan.bucket,
            Key=naming.chunk_errors_key(plan.job_id, chunk.index),
            Body=errors_csv(checked.rejected),
            ContentType="text/csv",
        )
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    bad_rows = len(checked.rejected)
    await s3.put_object(
        Bucket=plan.bucket,
        Key=key,
        Body=output,
        ContentType="text/csv",
        Metadata={ROWS_METADATA: str(checked.rows), BAD_ROWS_METADATA: str(bad_rows)},
    )
    return ChunkResult(
        rows=checked.rows, output_key=key, output_bytes=len(output), bad_rows=bad_rows
    )


async def finished_earlier(s3: S3Client, plan: ChunkPlan, chunk: Chunk) -> ChunkResult | None:
    """The chunk's stored result from an earlier attempt, if that attempt got so far."""
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    try:
        head = await s3.head_object(Bucket=plan.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    metadata = head.get("Metadata", {})
    if ROWS_METADATA not in metadata:
        return None
    return ChunkResult(
        rows=int(metadata[ROWS_METADATA]),
        output_key=key,
        output_bytes=head["ContentLength"],
        bad_rows=int(metadata.get(BAD_ROWS_METADATA, 0)),
    )
