"""Assemble a job's chunk outputs into its output object, atomically and repeatably.

The output is one multipart upload completed in a single call, so readers see
either nothing or the whole file. Chunk outputs of at least S3's 5 MiB part
minimum are copied server-side (UploadPartCopy); smaller ones are gathered into
parts here. The same chunk outputs always give the same bytes, so a retried
assembly rewrites an identical object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared import aws, naming
from shared.errors import ByomError
from shared.schemas import JobItem

log = logging.getLogger(__name__)

MIN_PART = 5 * 1024 * 1024
TARGET_PART = 8 * 1024 * 1024


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


def assemble(job: JobItem) -> int:
    """Write ``job.output_key`` from the chunk outputs; returns its size in bytes."""
    s3 = aws.s3()
    outputs = list_chunk_outputs(job)
    upload = s3.create_multipart_upload(
        Bucket=job.bucket, Key=job.output_key, ContentType="text/csv"
    )
    upload_id = upload["UploadId"]
    parts: list[dict[str, object]] = []
    buffer = bytearray()

    def put_buffer() -> None:
        number = len(parts) + 1
        etag = s3.upload_part(
            Bucket=job.bucket,
            Key=job.output_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=bytes(buffer),
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        buffer.clear()

    try:
        for output in outputs:
            if output.size >= MIN_PART and not buffer:
                number = len(parts) + 1
                copied = s3.upload_part_copy(
                    Bucket=job.bucket,
                    Key=job.output_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": job.bucket, "Key": output.key},
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
                continue
            buffer += s3.get_object(Bucket=job.bucket, Key=output.key)["Body"].read()
            if len(buffer) >= TARGET_PART:
                put_buffer()
        if buffer or not parts:
            put_buffer()
        s3.complete_multipart_upload(
            Bucket=job.bucket,
            Key=job.output_key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
        )
    except BaseException:
        s3.abort_multipart_upload(Bucket=job.bucket, Key=job.output_key, UploadId=upload_id)
        raise
    total = sum(output.size for output in outputs)
    log.info(
        "output assembled", extra={"job_id": job.job_id, "key": job.output_key, "bytes": total}
    )
    return total


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
    target = naming.errors_key(job.input_key, job.created_at)
    s3.put_object(Bucket=job.bucket, Key=target, Body=body, ContentType="text/csv")
    return target
