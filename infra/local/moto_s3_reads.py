"""The local S3's GET: an object's bytes read only as the server sends them.

Why: moto 5.2.5 keeps each object in a spooled temporary file, but every GET reads all of
it (``FakeKey.value``) and only then slices out the requested range
(``S3Response._handle_range_header``). A 64 KiB range of a 269 MB object costs as much as
the whole object, and a 2 GB object makes the server allocate 2 GB per GET.

``S3Response.get_object`` returns a ``KeyBody``, a lazy view of the key's bytes, in place
of ``key.value``. The view has what moto's response path uses (``len``, truthiness, the
range handler's ``content[begin:end + 1]``), so range parsing, 206, 416 InvalidRange,
Content-Range, checksums and conditional requests all stay moto's own code; werkzeug
streams the view, which reads only the bytes it sends, 1 MiB at a time. Upstream this
would be one line of ``get_object`` (``KeyBody(key)`` for ``key.value``); from outside,
``get_object`` is handed a view of the key whose ``value`` is that body
(:func:`streaming_get_object`).

Reads never use the spooled file's shared position: a file still in memory is read
through a ``memoryview``, one rolled over to disk with ``os.pread`` on a duplicate of its
descriptor, so concurrent GETs of one key need no lock, and a key disposed mid-stream
(``POST /moto-api/reset``) cannot pass its descriptor number to another file under us.

For measurements and tests only, :data:`READS` counts the bytes read out of object buffers
(whole values and ranges) and :func:`serve_counter` serves the total at
``GET /byom-debug/s3-read-bytes`` (``BYOM_MOTO_READ_COUNTER=1``, see ``moto_server.py``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response

CHUNK = 1024 * 1024  # bytes per read while streaming or copying: bounds memory per request
COUNTER_PATH = "/byom-debug/s3-read-bytes"
Buffer = tempfile.SpooledTemporaryFile[bytes]
Reader = Callable[[int, int], bytes]  # (offset, length) -> bytes


class _ReadCounter:
    """Bytes read out of object buffers; counts only when BYOM_MOTO_READ_COUNTER=1."""

    def __init__(self) -> None:
        self.enabled = False
        self.total = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        if self.enabled:
            with self._lock:
                self.total += count


READS = _ReadCounter()


def _pread(fd: int, offset: int, length: int) -> bytes:
    # pread may return less than asked (Linux caps one call near 2 GiB); loop to the end.
    pieces: list[bytes] = []
    while length > 0:
        piece = os.pread(fd, length, offset)
        if not piece:
            break
        pieces.append(piece)
        offset += len(piece)
        length -= len(piece)
    return b"".join(pieces)


@contextlib.contextmanager
def _reader(buffer: Buffer) -> Iterator[Reader]:
    """A function reading a key's buffer at any offset without touching its file position."""
    in_memory = buffer._file
    if isinstance(in_memory, io.BytesIO):  # not rolled over yet: under the spool's max_size
        view = in_memory.getbuffer()
        try:

            def read_view(offset: int, length: int) -> bytes:
                READS.add(length)
                return bytes(view[offset : offset + length])

            yield read_view
        finally:
            view.release()
        return
    buffer.flush()  # moto wrote through a BufferedRandom: its tail may not be in the file yet
    fd = os.dup(buffer.fileno())
    try:

        def read_file(offset: int, length: int) -> bytes:
            READS.add(length)
            return _pread(fd, offset, length)

        yield read_file
    finally:
        os.close(fd)


class KeyBody:
    """Bytes [start, stop) of one key, read only as the server sends them."""

    def __init__(self, key: FakeKey, start: int = 0, stop: int | None = None) -> None:
        self._key = key
        self._start = start
        self._stop = key.size if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index: slice) -> KeyBody:
        # Exactly bytes' slicing semantics (clamping, negative indices), without the bytes.
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("a key body slices only with step 1")
        return KeyBody(self._key, self._start + start, self._start + max(start, stop))

    def __iter__(self) -> Iterator[bytes]:
        # A generator: the buffer is opened at the first chunk and closed when werkzeug closes
        # the response, also when the client goes away early.
        with _reader(self._key._value_buffer) as read:
            for offset in range(self._start, self._stop, CHUNK):
                yield read(offset, min(CHUNK, self._stop - offset))


class _StreamingKey:
    """A FakeKey as get_object sees it: everything the key's own, but ``value`` is a KeyBody."""

    def __init__(self, key: FakeKey) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    @property
    def value(self) -> KeyBody:
        return KeyBody(self._key)


def streaming_get_object(original: Callable[[S3Response], Any]) -> Callable[[S3Response], Any]:
    def get_object(self: S3Response) -> Any:
        get_key = self._get_key

        def streaming_get_key(validate_storage_class: bool = True) -> tuple[Any, bool]:
            key, not_modified = get_key(validate_storage_class)
            return _StreamingKey(key), not_modified

        # An instance attribute of this request's own S3Response (key_dispatch makes one per
        # request), so concurrent requests cannot see each other's.
        self._get_key = streaming_get_key  # type: ignore[method-assign]
        try:
            return original(self)
        finally:
            del self._get_key

    return get_object


def serve_counter(app: type[DomainDispatcherApplication]) -> None:
    original = app.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == COUNTER_PATH:
            body = json.dumps({"bytes_read": READS.total}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return original(self, environ, start_response)

    app.__call__ = call  # type: ignore[method-assign]
