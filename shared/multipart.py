"""Writing one S3 object as a multipart upload: all or nothing.

Bytes are gathered into parts of ``part_bytes``; whole objects of at least S3's
5 MiB part minimum can instead be copied in server-side (UploadPartCopy). The
object appears only when :meth:`MultipartWriter.complete` succeeds; any error
inside the ``with`` block aborts the upload, so no partial object is ever seen.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIN_PART = 5 * 1024 * 1024
DEFAULT_PART = 8 * 1024 * 1024


class MultipartWriter:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        part_bytes: int = DEFAULT_PART,
        content_type: str = "binary/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.metadata = metadata or {}
        self.part_bytes = max(part_bytes, MIN_PART)
        self.content_type = content_type
        self.upload_id = ""
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def __enter__(self) -> MultipartWriter:
        self.upload_id = self.s3.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ContentType=self.content_type, Metadata=self.metadata
        )["UploadId"]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.s3.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= self.part_bytes:
            self._flush()

    def copy(self, source_key: str, source_bucket: str | None = None) -> bool:
        """Copy a whole object (of at least 5 MiB; of ``source_bucket``, default this
        object's bucket) in as the next part, server-side.

        Only possible while nothing is buffered: a part before it would be too
        small. Returns False then, and the caller writes the bytes instead.
        """
        if self.buffer:
            return False
        number = len(self.parts) + 1
        copied = self.s3.upload_part_copy(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
            CopySource={"Bucket": source_bucket or self.bucket, "Key": source_key},
        )  # fmt: skip
        self.parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
        return True

    def complete(self) -> str:
        """Upload what is left and make the object visible; returns its ETag."""
        if self.buffer or not self.parts:
            self._flush()
        done = self.s3.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},  # type: ignore[typeddict-item]
        )  # fmt: skip
        return done["ETag"].strip('"')

    def _flush(self) -> None:
        number = len(self.parts) + 1
        etag = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number,
            Body=bytes(self.buffer),
        )["ETag"]  # fmt: skip
        self.parts.append({"PartNumber": number, "ETag": etag})
        self.buffer.clear()
