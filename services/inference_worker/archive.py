"""Members of a zip archive job, read by ranged GETs (no download of the whole archive).

One archive is opened once per chunk (its central directory: a GET or two); each
member is then one or a few ranged reads, inflated here. A member is read to at
most its declared size, and that size is held to the image limit before a byte of
it is inflated, so a zip bomb stops at its directory entry.
"""

from __future__ import annotations

import shutil
import threading
import zipfile
from pathlib import Path

from shared.errors import InputError
from shared.s3_file import open_object


class Archive:
    def __init__(self, bucket: str, key: str, etag: str, size: int) -> None:
        self._zip = zipfile.ZipFile(open_object(bucket, key, etag, size))
        self._lock = threading.Lock()  # one member read at a time through the shared file

    def read(self, member: str, uri: str, line: int | None, limit: int) -> bytes:
        with self._lock:
            info = self._info(member, uri, line)
            if info.file_size > limit:
                raise InputError(
                    uri,
                    f"the member is {info.file_size} bytes inflated, over the {limit}-byte "
                    "limit (BYOM_MAX_IMAGE_BYTES)",
                    line=line,
                )
            try:
                with self._zip.open(info) as data:
                    return data.read(limit + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(uri, f"the member cannot be read: {exc}", line=line) from None

    def extract(self, member: str, uri: str, line: int | None, path: Path) -> None:
        with self._lock:
            info = self._info(member, uri, line)
            try:
                with self._zip.open(info) as data, path.open("wb") as out:
                    shutil.copyfileobj(data, out, 1024 * 1024)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise InputError(uri, f"the member cannot be read: {exc}", line=line) from None

    def _info(self, member: str, uri: str, line: int | None) -> zipfile.ZipInfo:
        try:
            return self._zip.getinfo(member)
        except KeyError:
            raise InputError(uri, "the member is not in the archive any more", line=line) from None

    def close(self) -> None:
        self._zip.close()
