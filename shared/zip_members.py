"""The members of an uploaded zip archive: listed from its central directory, read bounded.

Ingest lists an archive's images and videos; the worker reads each one by ranged
GETs of the archive. Both go through here, so an archive's bytes meet the same
limits wherever they are read:

- The central directory is read at most ``MAX_DIRECTORY_BYTES``, asked for before
  a byte of it is fetched (a lying end record cannot make zipfile read gigabytes),
  which bounds the entries, their memory (about 10 bytes per directory byte) and
  the time to list them.
- Any bytes at all give the member list or an ``InputError`` naming the archive.
- A member is inflated to at most its declared size, and the declared size is held
  to a limit before a byte is inflated: an image to ``BYOM_MAX_IMAGE_BYTES`` (in
  memory), a video (to a scratch file) to ``BYOM_MAX_FILE_BYTES`` and to
  ``BYOM_MAX_COMPRESSION_RATIO`` times its compressed size, as a ``.gz`` upload is.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Literal

from shared import media
from shared.errors import InputError

MIB = 1024 * 1024
# 100,000 members (BYOM_MAX_MANIFEST_ITEMS) with 120-byte names take 16 MiB; listed,
# a directory takes about 10 bytes of memory per byte (measured: 69 MB for 7 MB),
# so under 200 MB at this bound, within the ingest function's 512 MB.
MAX_DIRECTORY_BYTES = 16 * MIB
_COPY_BLOCK = MIB
# What zipfile raises on bytes that are not a zip it can read (ValueError covers
# UnicodeDecodeError in names; EOFError and struct.error cut records; zlib.error
# a member's corrupt deflate stream).
_NOT_A_ZIP = (
    zlib.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    struct.error,
    NotImplementedError,
    KeyError,
    IndexError,
    OverflowError,
)


class DirectoryTooLarge(InputError):
    """The central directory is longer than byom reads."""


class _BoundedReads:
    """A read-only file that refuses, before reading, to give more than ``budget`` bytes.

    The budget holds while zipfile reads the central directory; once it is listed,
    ``listed()`` lifts it, as each member's reads are bounded by its own limit.
    """

    def __init__(self, file: IO[bytes], budget: int, uri: str) -> None:
        self._file, self._left, self._uri = file, budget, uri

    def listed(self) -> None:
        self._left = 1 << 62

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            here = self._file.tell()
            size = self._file.seek(0, 2) - here
            self._file.seek(here)
        if size > self._left:
            raise DirectoryTooLarge(
                self._uri,
                f"its central directory is over the {MAX_DIRECTORY_BYTES}-byte limit; "
                "split the archive into several",
            )
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True


def open_archive(file: IO[bytes], uri: str) -> zipfile.ZipFile:
    """The archive in ``file``, its central directory read within the bound."""
    bounded = _BoundedReads(file, MAX_DIRECTORY_BYTES, uri)
    try:
        archive = zipfile.ZipFile(bounded)  # read, seek and tell are all it needs
    except _NOT_A_ZIP as exc:
        raise InputError(uri, f"not a zip archive: {exc}") from None
    bounded.listed()
    return archive


@dataclass(frozen=True)
class Member:
    name: str
    kind: Literal["image", "video"]
    size: int  # inflated, as the central directory declares it
    line: int  # 1-based position in the central directory, for messages


def _media_kind(name: str) -> Literal["image", "video"] | None:
    lowered = name.lower()
    if lowered.endswith(media.IMAGE_SUFFIXES):
        return "image"
    if lowered.endswith(media.VIDEO_SUFFIXES):
        return "video"
    return None


def media_members(archive: zipfile.ZipFile, uri: str, *, max_items: int) -> list[Member]:
    """The archive's images and videos, in directory order; other members are passed over."""
    found: list[Member] = []
    for number, info in enumerate(archive.infolist(), start=1):
        kind = _media_kind(info.filename)  # None for a folder ("name/") or an empty name
        if kind is None:
            continue
        if info.flag_bits & 0x1:
            raise InputError(uri, f"member {info.filename!r} is encrypted", line=number)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(
                uri,
                f"member {info.filename!r}: compression method {info.compress_type}; "
                "use stored or deflated",
                line=number,
            )
        found.append(Member(info.filename, kind, info.file_size, number))
        if len(found) > max_items:
            raise InputError(uri, f"more than {max_items} images (BYOM_MAX_MANIFEST_ITEMS)")
    return found


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, uri: str, line: int | None, limit: int
) -> bytes:
    """An image member, whole in memory: refused unread if it declares over ``limit``."""
    if info.file_size > limit:
        raise InputError(
            uri,
            f"the member is {info.file_size} bytes inflated, over the {limit}-byte "
            "limit (BYOM_MAX_IMAGE_BYTES)",
            line=line,
        )
    try:
        with archive.open(info) as data:
            return data.read(limit + 1)
    except _NOT_A_ZIP as exc:
        raise InputError(uri, f"the member cannot be read: {exc}", line=line) from None


def copy_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    out: IO[bytes],
    uri: str,
    line: int | None,
    *,
    max_bytes: int,
    max_ratio: int,
) -> int:
    """A video member into ``out``, bounded as an upload of it would be; bytes written."""
    limit = min(max_bytes, max(info.compress_size, 1) * max_ratio)
    if info.file_size > limit:
        why = (
            f"the {max_bytes}-byte limit (BYOM_MAX_FILE_BYTES)"
            if limit == max_bytes
            else f"{max_ratio} times its {info.compress_size} compressed bytes "
            "(BYOM_MAX_COMPRESSION_RATIO)"
        )
        raise InputError(
            uri, f"the member is {info.file_size} bytes inflated, over {why}", line=line
        )
    written = 0
    try:
        with archive.open(info) as data:
            while block := data.read(_COPY_BLOCK):
                written += len(block)
                if written > limit:  # zipfile stops at the declared size; this is a backstop
                    raise InputError(uri, "the member inflates past its declared size", line=line)
                out.write(block)
    except _NOT_A_ZIP as exc:
        raise InputError(uri, f"the member cannot be read: {exc}", line=line) from None
    return written
