"""Score one chunk: read its lines, parse them once, fan out requests, store predictions.

The chunk's byte range was cut by arithmetic; the reader aligns it to lines
(``shared/csvchunks.py``). Rows are parsed into float32 here, once, and sent as
``application/x-npy`` (which SageMaker's inference toolkit decodes too), so the
endpoint's cycles go to the model; endpoints that speak only CSV get ``text/csv``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from botocore.exceptions import ClientError

from services.inference_worker.endpoint import Endpoint
from services.inference_worker.parse import ParsedRows, parse_rows, shift_lines
from shared import aws, chunk_output, naming
from shared.chunk_output import checked_answers, errors_csv, header_line, with_blanks
from shared.csvchunks import count_lines, owned_lines, read_start, split_records
from shared.errors import ByomError, InputError
from shared.formats import CSV_TYPE, NPY_TYPE
from shared.rows import split_lines
from shared.schemas import Chunk, ChunkPlan

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

NPY, CSV = NPY_TYPE, CSV_TYPE

# Read this far past the chunk's end in the same GET, so the line that crosses
# the end rarely needs a second request.
_TAIL = 64 * 1024
# The line-count pass on the error path reads the file in pieces this large,
# several at a time, never holding more than one block of each.
_COUNT_PIECE = 64 * 1024 * 1024
_COUNT_PARALLEL = 4


@dataclass(frozen=True)
class ChunkResult:
    rows: int
    output_key: str
    output_bytes: int
    bad_rows: int = 0


async def get_range(s3: S3Client, plan: ChunkPlan, start: int, end: int) -> bytes:
    response = await s3.get_object(
        Bucket=plan.bucket,
        Key=plan.key,
        Range=f"bytes={start}-{end - 1}",
        IfMatch=aws.if_match(plan.etag),
    )
    data: bytes = await response["Body"].read()
    return data


async def read_lines(
    s3: S3Client, plan: ChunkPlan, chunk: Chunk, *, max_line_bytes: int, uri: str
) -> tuple[int, bytes]:
    """The lines the chunk owns, and the offset of the first: usually one GET."""
    begin = read_start(chunk.start, plan.data_start)
    buffer = await get_range(s3, plan, begin, min(plan.size, chunk.end + _TAIL))
    while (span := owned_lines(
        buffer, begin, chunk.start, chunk.end, data_start=plan.data_start, size=plan.size
    )) is None:  # fmt: skip
        if len(buffer) > chunk.end - begin + max_line_bytes:
            # The line that crosses the chunk's end starts after the last newline
            # before it (or where the chunk's first line starts).
            cut = buffer.rfind(b"\n", 0, chunk.end - begin)
            start = begin + cut + 1 if cut >= 0 else max(begin, plan.data_start)
            raise InputError(
                uri,
                f"the line is longer than the {max_line_bytes}-byte limit (BYOM_MAX_LINE_BYTES)",
                line=await line_number_at(s3, plan, start),
            )
        more_from = begin + len(buffer)
        buffer += await get_range(s3, plan, more_from, min(plan.size, more_from + 4 * _TAIL))
    first, last = span
    return first, buffer[first - begin : last - begin]


async def line_number_at(s3: S3Client, plan: ChunkPlan, offset: int) -> int:
    """The file's line number of the line starting at ``offset`` (error path only).

    Counts newlines from the first row to ``offset`` in streamed pieces read in
    parallel: memory stays at a few blocks even deep inside a 10 GiB file.
    """
    starts = range(plan.data_start, offset, _COUNT_PIECE)
    pieces = [(start, min(start + _COUNT_PIECE, offset)) for start in starts]
    slots = asyncio.Semaphore(_COUNT_PARALLEL)

    async def newlines(start: int, end: int) -> int:
        async with slots:
            response = await s3.get_object(
                Bucket=plan.bucket,
                Key=plan.key,
                Range=f"bytes={start}-{end - 1}",
                IfMatch=aws.if_match(plan.etag),
            )
            count = 0
            async for block in response["Body"].iter_chunks(1024 * 1024):
                count += block.count(b"\n")
            return count

    counts = await asyncio.gather(*(newlines(s, e) for s, e in pieces))
    return plan.first_line + sum(counts)


async def check_chunk(
    s3: S3Client,
    plan: ChunkPlan,
    first: int,
    data: bytes,
    *,
    columns: int,
    uri: str,
    max_line_bytes: int | None = None,
) -> ParsedRows:
    """Parse the chunk's lines; bad rows fail the job (FAIL policy) or are set aside."""
    parsed = await asyncio.to_thread(
        parse_rows, data, columns=columns, uri=uri, max_line_bytes=max_line_bytes
    )
    if not parsed.rejected:
        return parsed
    first_line = await line_number_at(s3, plan, first)
    rejected = shift_lines(parsed.rejected, first_line - 1)
    last_line = first_line + parsed.rows - 1
    plan.policy.enforce(rejected, uri=uri, what=f"bad rows in lines {first_line}-{last_line}")
    return ParsedRows(rows=parsed.rows, values=parsed.values, rejected=rejected)


def npy_requests(
    values: np.ndarray, request_bytes: int, max_rows: int | None = None
) -> list[bytes]:
    """The rows as ``.npy`` bodies of at most ``request_bytes`` and ``max_rows`` each
    (at least one row)."""
    row_bytes = max(1, values.shape[1] * values.itemsize)
    per_request = max(1, (request_bytes - 256) // row_bytes)  # 256: room for the npy header
    if max_rows is not None:
        per_request = min(per_request, max_rows)
    bodies = []
    for start in range(0, len(values), per_request):
        buffer = io.BytesIO()
        np.save(buffer, values[start : start + per_request], allow_pickle=False)
        bodies.append(buffer.getvalue())
    return bodies


def good_lines(data: bytes, rejected: dict[int, InputError]) -> bytes:
    """The chunk's text without its rejected rows, for endpoints that read CSV."""
    if not rejected:
        return data if data.endswith(b"\n") else data + b"\n"
    return b"".join(
        line + b"\n" for index, line in enumerate(split_lines(data)) if index not in rejected
    )


def request_rows(body: bytes, content_type: str) -> int:
    """The rows a request body holds: an ``.npy`` array's length, else its CSV lines."""
    if content_type == NPY:
        stream = io.BytesIO(body)
        major, _ = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape = read_header(stream)[0]
        return int(shape[0]) if shape else 1
    return count_lines(body)


async def predict(endpoint: Endpoint, bodies: list[bytes], content_type: str, rows: int) -> bytes:
    """One prediction line per row, in order, from requests sent concurrently; each
    answer is checked against its own request (PredictionCountError: a model error)."""
    if not rows:
        return b""
    expected = [request_rows(body, content_type) for body in bodies]
    if sum(expected) != rows:  # the requests were cut wrong: a bug here, not the model
        raise ByomError(f"{len(bodies)} requests hold {sum(expected)} rows, not {rows}")
    answers = await asyncio.gather(
        *(endpoint.invoke(body, content_type=content_type, accept=CSV) for body in bodies)
    )
    return checked_answers(answers, expected)


async def score_chunk(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    columns: int,
    request_bytes: int,
    max_line_bytes: int,
    uri: str,
    content_type: str = NPY,
) -> ChunkResult:
    """A plain CSV chunk (no processing settings): one prediction line per row."""
    assert plan.processing is None, "a plan with processing is scored by processed.py"
    request_bytes, max_rows = plan.request_limits(request_bytes)
    first, data = await read_lines(s3, plan, chunk, max_line_bytes=max_line_bytes, uri=uri)
    parsed = await check_chunk(
        s3, plan, first, data, columns=columns, uri=uri, max_line_bytes=max_line_bytes
    )
    if content_type == NPY:
        bodies = npy_requests(parsed.values, request_bytes, max_rows)
    else:
        bodies = split_records(good_lines(data, parsed.rejected), request_bytes, max_rows)
    del data  # the text is not needed past here: keep the window small
    rows = len(parsed.values)
    output = await predict(endpoint, bodies, content_type, rows)
    if parsed.rejected:
        output = with_blanks(output, parsed.rows, parsed.rejected)
    if plan.output_header is not None and chunk.index == 0:
        output = header_line(plan.output_header, output) + output
    return await store_chunk(
        s3, plan, chunk, output, rows=parsed.rows, rejected=parsed.rejected, content_type=CSV
    )


async def store_chunk(
    s3: S3Client,
    plan: ChunkPlan,
    chunk: Chunk,
    output: bytes,
    *,
    rows: int,
    rejected: Mapping[int, InputError],
    content_type: str,
) -> ChunkResult:
    """The chunk's output in staging, with the counts a retry reuses, and its errors
    report when rows were rejected: the same for rows, records and images."""
    if rejected:
        await s3.put_object(
            Bucket=plan.staging,
            Key=naming.chunk_errors_key(plan.job_id, chunk.index),
            Body=errors_csv(rejected),
            ContentType=CSV,
        )
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    await s3.put_object(
        Bucket=plan.staging,
        Key=key,
        Body=output,
        ContentType=content_type,
        Metadata=chunk_output.metadata(rows, len(rejected)),
    )
    return ChunkResult(rows=rows, output_key=key, output_bytes=len(output), bad_rows=len(rejected))


async def finished_earlier(s3: S3Client, plan: ChunkPlan, chunk: Chunk) -> ChunkResult | None:
    """The chunk's stored result from an earlier attempt, if that attempt got so far."""
    key = naming.chunk_output_key(plan.job_id, chunk.index)
    try:
        head = await s3.head_object(Bucket=plan.staging, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    recorded = chunk_output.counts(head.get("Metadata", {}))
    if recorded is None:
        return None
    rows, bad_rows = recorded
    return ChunkResult(
        rows=rows, output_key=key, output_bytes=head["ContentLength"], bad_rows=bad_rows
    )
