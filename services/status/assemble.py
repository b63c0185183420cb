"""Assemble a job's chunk outputs into its output object, atomically and repeatably.

The output is one multipart upload completed in a single call, so readers see
either nothing or the whole file. Chunk outputs of at least S3's 5 MiB part
minimum are copied server-side (UploadPartCopy); smaller ones are joined into
group objects as soon as each run of ``BYOM_OUTPUT_GROUP_CHUNKS`` is done (by
whichever status invocation counts the run's last chunk), so that the final
assembly can copy those instead of downloading them all at the end. The same
chunk outputs always give the same bytes, so a retried assembly rewrites an
identical object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.status.assemble_parquet import assemble_parquet
from services.status.assemble_transform import assemble_transform
from services.status.chunk_outputs import (
    ChunkOutput,
    assemble_group,
    assemble_lines,
    group_members,
    list_chunk_outputs,
)
from services.status.kinds import kind_of_job, output_format_of
from shared import aws, naming
from shared.formats import CSV_TYPE, Format, JobKind
from shared.schemas import JobItem

log = logging.getLogger(__name__)

# The machinery the assemblers share, under the names callers have always imported.
__all__ = [
    "ChunkOutput",
    "assemble",
    "assemble_errors",
    "assemble_group",
    "assemble_lines",
    "group_members",
    "list_chunk_outputs",
]


def assemble(job: JobItem) -> int:
    """Write ``job.output_key`` from the chunk outputs; returns its size in bytes.

    The job's output format (recorded on the job item at ingest) chooses the
    assembler (``ASSEMBLERS``).
    """
    outputs = list_chunk_outputs(job)
    if kind_of_job(job) is JobKind.TRANSFORM:
        return assemble_transform(job, outputs)
    return ASSEMBLERS[output_format_of(job)](job, outputs)


def _parquet(job: JobItem, outputs: list[ChunkOutput]) -> int:
    return assemble_parquet(job, [(chunk.key, chunk.size) for chunk in outputs])


Assembler = Callable[[JobItem, list[ChunkOutput]], int]
# The assembler of each output format: line outputs (CSV, JSON Lines: rows, records
# and media alike) are concatenated; Parquet parts have their row groups moved
# into one file. Adding a format: a module with its assembler, and a row here.
ASSEMBLERS: dict[Format, Assembler] = {
    Format.CSV: assemble_lines,
    Format.JSONL: assemble_lines,
    Format.PARQUET: _parquet,
}


ERRORS_HEADER = b"line,column,reason\n"


def assemble_errors(job: JobItem) -> str | None:
    """Gather the rows every chunk rejected into ``errors/``; returns the key, if any.

    Reports are a line per rejected row, so they are small: read and joined here.
    """
    s3 = aws.s3()
    paginator = s3.get_paginator("list_objects_v2")
    keys = sorted(
        obj["Key"]
        for page in paginator.paginate(
            Bucket=job.bucket, Prefix=naming.chunk_errors_prefix(job.job_id)
        )
        for obj in page.get("Contents", [])
    )
    if not keys:
        return None
    body = ERRORS_HEADER + b"".join(
        s3.get_object(Bucket=job.bucket, Key=key)["Body"].read() for key in keys
    )
    target = naming.errors_key(job.output_key)  # follows the output's claimed name
    s3.put_object(Bucket=job.bucket, Key=target, Body=body, ContentType=CSV_TYPE)
    return target
