"""A model package copied into the registry with its container settings inside it.

On AWS a SageMaker multi-model endpoint fetches only the ``model.tar.gz`` a
request's TargetModel names, and its container has no network access: settings
kept beside the package would never reach the model. So registration writes a
new package: the source's members, as they are, plus the reserved member
``.byom-container.json`` (``MEMBER``) at its root, which the model server reads
from the extracted folder when it loads the target (locally and on AWS alike;
model/server/container_settings.py). A source package that already holds a
member of that name (or anything under it) has it **replaced**: the settings are
byom's to write, and a user's own copy would otherwise decide the environment.

Streaming, in bounded memory whatever the package's size: the source object is
read through gzip member by member (tarfile over a forward-only reader that
refuses any single read past ``MAX_READ``, so a long-name or PAX header record
cannot be buffered whole), the new archive is gzip-compressed as it is written
and uploaded in ``PART_SIZE`` parts of an S3 multipart upload: at most about one
part plus tarfile's and gzip's small buffers are held at once.

The cost: each registration of a (package, image, environment) reads the whole
source package and writes it again, inflating and recompressing it (gzip level
``COMPRESS_LEVEL``, the fastest, to keep the API Lambda's CPU time down), in the
CreateTransformJob call. That is about a second per few tens of MiB on a Lambda;
a package of several GiB may not fit the API function's timeout. A registered
version is reused by every later job with the same package, image and
environment, so the cost is paid once per version.

This is stdlib only (gzip, tarfile): it runs in the API Lambda, which has no
model/ code and no numpy.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from shared.errors import ByomError

# The model server's name for it (model/server/container_settings.py MEMBER).
MEMBER = ".byom-container.json"
# No single read of the inflated source past this: tar headers are 512-byte blocks,
# member data is copied in 16 KiB pieces, and long-name and PAX records larger than
# this are refused (the model server refuses them at 64 KiB too).
MAX_READ = 64 * 1024
PART_SIZE = 8 * 1024 * 1024  # S3's parts are at least 5 MiB, but the last
# Bombs stop here rather than run the API function to its timeout: the model
# server's own default limits (model/package.py PackageLimits), which it applies
# again when it loads the package.
MAX_MEMBERS = 10_000
MAX_RATIO = 100.0
RATIO_FLOOR = 16 * 1024 * 1024
COMPRESS_LEVEL = 1
COPY_BUFFER = 16 * 1024
UNREADABLE = (OSError, EOFError, zlib.error, tarfile.TarError)


class RepackError(ByomError):
    """The source package cannot be read as a tar.gz; says why."""


class _ForwardReader(io.RawIOBase):
    """A forward-only, read-only view of an inflated stream, as tarfile reads it:
    a read longer than ``MAX_READ`` is refused, a forward seek reads and drops."""

    def __init__(self, inner: Any, compressed: int) -> None:
        super().__init__()
        self._inner = inner
        self._compressed = max(compressed, 1)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ:
            asked = "the rest of the stream" if size is None or size < 0 else f"{size} bytes"
            raise RepackError(
                f"a tar header record asks for {asked}; long names and PAX headers may "
                f"take at most {MAX_READ // 1024} KiB"
            )
        data: bytes = self._inner.read(size)
        self._position += len(data)
        if self._position > RATIO_FLOOR and self._position / self._compressed > MAX_RATIO:
            raise RepackError(
                f"it inflates past {MAX_RATIO:g} times its compressed size of "
                f"{self._compressed} bytes (a decompression bomb?)"
            )
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._position + offset}.get(whence)
        if target is None or target < self._position:
            raise io.UnsupportedOperation("only forward seeks")
        while self._position < target:
            if not self.read(min(MAX_READ, target - self._position)):
                break
        return self._position


class _MultipartSink(io.RawIOBase):
    """A write-only stream that uploads what it is given as S3 multipart parts."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="application/gzip"
        )["UploadId"]

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            self._upload(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]
        return len(data)

    def _upload(self, body: bytes) -> None:
        number = len(self._parts) + 1
        response = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))
            self._buffer.clear()
        self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        self._s3.abort_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
        )


def is_reserved(name: str) -> bool:
    """Whether a member's name is the settings member, or lies under it."""
    parts = [part for part in PurePosixPath(name).parts if part not in (".", "/")]
    return bool(parts) and parts[0] == MEMBER


def settings_document(image: str | None, environment: Mapping[str, str]) -> bytes:
    return json.dumps({"image": image, "environment": dict(environment)}, sort_keys=True).encode()


def _copy_info(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """The member's header as the new archive writes it (a sparse file becomes a
    plain one: its data is copied expanded)."""
    info = tarfile.TarInfo(member.name)
    info.size = member.size if member.isreg() else 0
    info.mode = member.mode
    info.mtime = member.mtime
    info.type = tarfile.REGTYPE if member.isreg() else member.type
    info.linkname = member.linkname
    info.uid, info.gid = member.uid, member.gid
    info.uname, info.gname = member.uname, member.gname
    return info


def repack(
    s3: Any,
    source: tuple[str, str],
    target: tuple[str, str],
    image: str | None,
    environment: Mapping[str, str],
) -> None:
    """Copy the package at `source` (bucket, key) to `target` with the container
    settings inside it; `RepackError` when the source is not a readable tar.gz."""
    settings = settings_document(image, environment)
    response = s3.get_object(Bucket=source[0], Key=source[1])
    body = response["Body"]
    sink = _MultipartSink(s3, *target)
    try:
        with (
            gzip.GzipFile(fileobj=body, mode="rb") as inflated,
            tarfile.open(
                fileobj=_ForwardReader(inflated, response.get("ContentLength", 0)), mode="r:"
            ) as archive,
            gzip.GzipFile(
                fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0, filename=""
            ) as compressed,
            tarfile.TarFile(
                fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFFER
            ) as out,
        ):
            info = tarfile.TarInfo(MEMBER)
            info.size, info.mode = len(settings), 0o644
            out.addfile(info, io.BytesIO(settings))
            count = 0
            while (member := archive.next()) is not None:
                headers: Any = archive  # tarfile keeps every header it read (`members`):
                headers.members.clear()  # not here, or memory grows with the members
                count += 1
                if count > MAX_MEMBERS:
                    raise RepackError(f"it has more than {MAX_MEMBERS} members")
                if is_reserved(member.name):
                    continue  # byom writes the settings; the source's copy is replaced
                data = archive.extractfile(member) if member.isreg() else None
                out.addfile(_copy_info(member), data)
        sink.complete()
    except BaseException as exc:
        sink.abort()
        if isinstance(exc, RepackError):
            raise
        if isinstance(exc, UNREADABLE):
            raise RepackError(f"not a readable tar.gz: {exc}") from exc
        raise
    finally:
        body.close()
