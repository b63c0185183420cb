"""A job's chunk outputs in staging: listing them, joining groups of them early, and
concatenating line outputs into one object (the assemblers' shared machinery).

Every assembler (``assemble.py``'s table and the per-kind modules) builds on these;
they import nothing of the assemblers, so the package's imports run one way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.status.kinds import output_format_of
from shared import aws, naming
from shared.errors import ByomError
from shared.formats import CSV_TYPE, MEDIA_TYPE, Format
from shared.multipart import MIN_PART, MultipartWriter
from shared.schemas import JobItem
from shared.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkOutput:
    key: str
    size: int


def list_chunk_outputs(job: JobItem) -> list[ChunkOutput]:
    """The job's chunk outputs in chunk order; all of them must be there."""
    expected = [naming.chunk_output_key(job.job_id, i) for i in range(job.chunk_count)]
    prefix = naming.chunk_outputs_prefix(job.job_id)
    found: dict[str, int] = {}
    paginator = aws.s3().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=job.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = obj["Size"]
    missing = [key for key in expected if key not in found]
    if missing:
        raise ByomError(
            f"job {job.job_id}: {len(missing)} chunk outputs missing, e.g. {missing[0]}"
        )
    return [ChunkOutput(key, found[key]) for key in expected]


def _read(key: str, bucket: str) -> bytes:
    data: bytes = aws.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def group_members(job: JobItem, group: int) -> range:
    size = get_settings().output_group_chunks
    return range(group * size, min(job.chunk_count, (group + 1) * size))


def assemble_group(job: JobItem, group: int) -> None:
    """Join one group of consecutive chunk outputs into one object, as soon as all
    of them are in, so the final assembly can copy it server-side.

    Repeatable (the same members give the same bytes) and only an optimisation:
    the final assembly uses a group object only when its size is the members' sum.
    Parquet parts are never joined so (their row groups are moved at the end).
    """
    if output_format_of(job) is Format.PARQUET:
        return
    body = b"".join(
        _read(naming.chunk_output_key(job.job_id, index), job.bucket)
        for index in group_members(job, group)
    )
    aws.s3().put_object(
        Bucket=job.bucket,
        Key=naming.group_output_key(job.job_id, group),
        Body=body,
        ContentType=CSV_TYPE,
    )


def _group_sizes(job: JobItem) -> dict[str, int]:
    paginator = aws.s3().get_paginator("list_objects_v2")
    return {
        obj["Key"]: obj["Size"]
        for page in paginator.paginate(Bucket=job.bucket, Prefix=naming.groups_prefix(job.job_id))
        for obj in page.get("Contents", [])
    }


def assemble_lines(
    job: JobItem,
    outputs: list[ChunkOutput],
    *,
    target: tuple[str, str] | None = None,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Line outputs (CSV, JSON Lines) concatenated in chunk order, into
    ``target`` (bucket, key; default the job's output in its bucket).

    Group by group, in order: a finished group object of at least 5 MiB is copied
    server-side; anything else is read and gathered into parts here.
    """
    s3 = aws.s3()
    groups = _group_sizes(job)
    group_size = get_settings().output_group_chunks
    content_type = content_type or MEDIA_TYPE[output_format_of(job)]
    bucket, key = target or (job.bucket, job.output_key)
    with MultipartWriter(s3, bucket, key, content_type=content_type, metadata=metadata) as output:
        for group, first in enumerate(range(0, len(outputs), group_size)):
            members = outputs[first : first + group_size]
            joined = naming.group_output_key(job.job_id, group)
            if groups.get(joined) == sum(chunk.size for chunk in members):
                members = [ChunkOutput(joined, groups[joined])]
            for piece in members:
                if piece.size >= MIN_PART and output.copy(piece.key, job.bucket):
                    continue
                output.write(_read(piece.key, job.bucket))
        output.complete()
    total = sum(chunk.size for chunk in outputs)
    log.info("output assembled", extra={"job_id": job.job_id, "key": key, "bytes": total})
    return total
