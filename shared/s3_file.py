"""One S3 object version as a seekable, read-only file: each read is a ranged GET.

For formats that are read from their end or in pieces, such as a zip archive's
central directory and members, without downloading the whole object. Reads are
buffered (`open_object`), and `If-Match` pins the version: an object replaced
while it is read fails instead of mixing two versions.
"""

from __future__ import annotations

import io
from typing import Any

from shared import aws

BUFFER = 256 * 1024


class S3RangeFile(io.RawIOBase):
    def __init__(self, bucket: str, key: str, etag: str, size: int, s3: Any = None) -> None:
        self.bucket, self.key, self.etag, self.size = bucket, key, etag, size
        self.s3 = s3 or aws.s3()
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        response = self.s3.get_object(
            Bucket=self.bucket,
            Key=self.key,
            Range=f"bytes={self.position}-{self.position + wanted - 1}",
            IfMatch=aws.if_match(self.etag),
        )
        data = response["Body"].read()
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def open_object(bucket: str, key: str, etag: str, size: int) -> io.BufferedReader:
    """The object as a buffered binary file (reads of less than 256 KiB share a GET)."""
    return io.BufferedReader(S3RangeFile(bucket, key, etag, size), buffer_size=BUFFER)
