"""Ingest's access to the upload: one HEAD of the version the event names, then
ranged reads of that version only (a changed object fails instead of mixing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from shared import aws
from shared.errors import InputError
from shared.options import UploadOptions
from shared.schemas import S3ObjectCreatedEvent


class ObjectReader:
    """Ranged reads of one object version; a changed object fails instead of mixing."""

    def __init__(self, bucket: str, key: str, etag: str) -> None:
        self.bucket, self.key, self.etag = bucket, key, etag

    def __call__(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = aws.s3().get_object(
            Bucket=self.bucket,
            Key=self.key,
            Range=f"bytes={start}-{end - 1}",
            IfMatch=aws.if_match(self.etag),
        )
        return response["Body"].read()


@dataclass(frozen=True)
class Upload:
    """The uploaded object as S3 has it now (the event's key may be URL-encoded)."""

    bucket: str
    key: str
    etag: str
    size: int
    metadata: dict[str, str]
    last_modified: datetime | None = None
    content_type: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def options(self) -> UploadOptions:
        """Its ``byom-*`` metadata, read once into one object."""
        return UploadOptions.of(self.metadata)


def find_upload(event: S3ObjectCreatedEvent) -> Upload | None:
    """HEAD the object the event names; None if that version is gone (overwritten).

    Ingest may list ``input/``, so S3 says 404 for a missing key and 403 only for
    a real denial, which fails the job with the reason (``UploadDenied``).
    """
    bucket, obj = event.detail.bucket.name, event.detail.object
    etag = obj.etag.strip('"')
    denied: ClientError | None = None
    for key in dict.fromkeys((obj.key, unquote_plus(obj.key))):
        try:
            head = aws.s3().head_object(Bucket=bucket, Key=key, IfMatch=aws.if_match(etag))
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403:
                denied = exc
                continue
            if status in (404, 412):
                continue
            raise
        return Upload(
            bucket,
            key,
            etag,
            head["ContentLength"],
            head.get("Metadata", {}),
            head.get("LastModified"),
            head.get("ContentType", ""),
        )
    if denied is not None:
        raise UploadDenied(f"s3://{bucket}/{obj.key}", denied)
    return None


class UploadDenied(InputError):
    """S3 refused to let ingest read the upload: a permissions problem, not a missing key."""

    def __init__(self, uri: str, error: ClientError) -> None:
        code = error.response.get("Error", {}).get("Code", "AccessDenied")
        super().__init__(
            uri,
            f"S3 denied reading the upload ({code}); check the bucket policy, the object's "
            "owner and its KMS key grant the ingest role s3:GetObject",
        )
