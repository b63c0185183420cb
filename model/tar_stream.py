"""The inflated bytes of an untrusted tar archive, counted and capped as tarfile reads them.

tarfile reads a GNU long name (`L`, `K`) or a PAX header (`x`, `g`) whole, with one
`read` of the size the record declares, inside `TarFile.next()`: before any
member check can see the member it describes. A 400 MiB long name compresses to
a few hundred KiB. So the archive's decompressed stream is wrapped in a reader
that refuses, before reading:

- any single read longer than `max_read` (tar headers are 512-byte blocks, and
  the records above are capped at `MAX_HEADER_BYTES`);
- a position past `max_bytes`, the inflated size the package limits allow;
- past `ratio_floor`, a position more than `max_ratio` times the compressed size.

Seeks forward (tarfile skips member data that way) inflate too, so they count.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Protocol

from model.errors import ByomModelError

# The largest long-name or PAX record a package may hold: names in byom packages
# are short, and PAX records hold a handful of keys.
MAX_HEADER_BYTES = 64 * 1024
# tarfile reads a header record rounded up to whole 512-byte blocks (the cap is a
# whole number of them) and member data in 16 KiB pieces when it extracts.
MAX_READ = MAX_HEADER_BYTES


class Inflated(Protocol):
    """What is read: a gzip stream, or the file itself for a plain .tar."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class StreamLimit(ByomModelError):
    """The stream was read past one of its limits; the message says which."""


class BoundedStream(io.RawIOBase):
    """A read-only, forward-seekable view of `inner` that counts what it inflates."""

    def __init__(
        self,
        inner: Inflated,
        *,
        compressed: int,
        max_bytes: int,
        max_ratio: float,
        ratio_floor: int,
        max_read: int = MAX_READ,
        on_limit: Callable[[str], Exception] = StreamLimit,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._compressed = max(compressed, 1)
        self._max_bytes = max_bytes
        self._max_ratio = max_ratio
        self._ratio_floor = ratio_floor
        self._max_read = max_read
        self._on_limit = on_limit
        self.name: Any = getattr(inner, "name", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._inner.tell()

    def _allow(self, end: int) -> None:
        """Refuse a read or seek that would bring the stream to `end`."""
        if end > self._max_bytes:
            raise self._on_limit(
                f"the archive inflates past {self._max_bytes} bytes (BYOM_PACKAGE_MAX_BYTES)"
            )
        if end > self._ratio_floor and end / self._compressed > self._max_ratio:
            raise self._on_limit(
                f"the archive inflates past {self._max_ratio:g} times its compressed size of "
                f"{self._compressed} bytes (a decompression bomb? BYOM_PACKAGE_MAX_RATIO)"
            )

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self._max_read:
            asked = "the rest of the stream" if size is None or size < 0 else f"{size} bytes"
            raise self._on_limit(
                f"a tar header record declares {asked}; long names and PAX headers may "
                f"take at most {MAX_HEADER_BYTES // 1024} KiB"
            )
        self._allow(self.tell() + size)
        return self._inner.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.tell() + offset}.get(whence)
        if target is None:
            raise io.UnsupportedOperation("only seeks from the start or the current position")
        self._allow(target)
        return self._inner.seek(target)
