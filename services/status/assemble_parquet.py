"""A job's Parquet output: its chunks' Parquet parts moved into one file.

Each chunk's part is a whole Parquet file; concatenating them would not be one.
Their row groups are moved as they are (``shared/parquet_concat.py``): the
output is ``PAR1``, every part's row-group bytes in chunk order, and one footer
listing them all at their new offsets, written as one multipart upload, so the
output appears whole or not at all and a retried assembly writes the same bytes.
"""

from __future__ import annotations

from shared import aws
from shared.csvchunks import ReadRange
from shared.errors import ByomError
from shared.formats import PARQUET_TYPE
from shared.multipart import MultipartWriter
from shared.parquet_concat import ConcatError, joined_footer, read_part_footer
from shared.parquet_footer import MAGIC
from shared.schemas import JobItem
from shared.thrift_compact import Struct, ThriftError

PARQUET = PARQUET_TYPE


def assemble_parquet(job: JobItem, outputs: list[tuple[str, int]]) -> int:
    """Write ``job.output_key`` from the parts (key, size) in chunk order; its size."""
    s3 = aws.s3()

    def reader(key: str) -> ReadRange:
        def read(start: int, end: int) -> bytes:
            response = s3.get_object(Bucket=job.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
            data: bytes = response["Body"].read()
            return data

        return read

    parts: list[tuple[Struct, int]] = []
    position = len(MAGIC)
    with MultipartWriter(s3, job.bucket, job.output_key, content_type=PARQUET) as output:
        output.write(MAGIC)
        for key, size in outputs:
            read = reader(key)
            try:
                footer_start, footer = read_part_footer(read, size)
            except (ConcatError, ThriftError) as exc:
                raise ByomError(f"job {job.job_id}: chunk output {key}: {exc}") from exc
            data = read(len(MAGIC), footer_start)
            parts.append((footer, position))
            output.write(data)
            position += len(data)
        try:
            tail = joined_footer(parts)
        except (ConcatError, ThriftError) as exc:
            raise ByomError(f"job {job.job_id}: {exc}") from exc
        output.write(tail)
        output.complete()
    return position + len(tail)
