"""Members of a zip archive job, read by ranged GETs (no download of the whole archive).

One archive is opened once per chunk (its central directory: a GET or two, bounded
by ``shared/zip_members.py``); each member is then one or a few ranged reads,
inflated here. Every member is held to a limit before a byte of it is inflated,
so a zip bomb stops at its directory entry: an image to the image limit, a video
to the file size and compression ratio an upload of it would be held to.
"""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

from shared import zip_members
from shared.errors import InputError
from shared.s3_file import open_object
from shared.settings import get_settings


class Archive:
    def __init__(self, bucket: str, key: str, etag: str, size: int) -> None:
        file = open_object(bucket, key, etag, size)
        self._zip = zip_members.open_archive(file, f"s3://{bucket}/{key}")
        self._lock = threading.Lock()  # one member read at a time through the shared file

    def read(self, member: str, uri: str, line: int | None, limit: int) -> bytes:
        with self._lock:
            info = self._info(member, uri, line)
            return zip_members.read_member(self._zip, info, uri, line, limit)

    def extract(self, member: str, uri: str, line: int | None, path: Path) -> None:
        settings = get_settings()
        with self._lock:
            info = self._info(member, uri, line)
            with path.open("wb") as out:
                zip_members.copy_member(
                    self._zip, info, out, uri, line,
                    max_bytes=settings.max_file_bytes, max_ratio=settings.max_compression_ratio,
                )  # fmt: skip

    def _info(self, member: str, uri: str, line: int | None) -> zipfile.ZipInfo:
        try:
            return self._zip.getinfo(member)
        except KeyError:
            raise InputError(uri, "the member is not in the archive any more", line=line) from None

    def close(self) -> None:
        self._zip.close()
