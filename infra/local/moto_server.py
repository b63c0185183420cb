"""The local stack's AWS: moto's server, patched so that an S3 GET costs the bytes it
returns, and DynamoDB's item writes are atomic as on AWS.

python -m infra.local.moto_server -H 127.0.0.1 -p 4566   (the flags of ``python -m moto.server``)

Why: moto 5.2.5 keeps each object in a spooled temporary file, but every GET reads all of
it (``FakeKey.value``) and only then slices out the requested range
(``S3Response._handle_range_header``). A 64 KiB range of a 269 MB object costs as much as
the whole object, and a 2 GB object makes the server allocate 2 GB per GET. Completing a
multipart upload concatenates every part into one ``bytearray`` (plus copies for
``bytes()`` and the full-object checksum), and UploadPartCopy reads the whole source
object to keep a range of it.

What this module changes, before it hands over to ``moto.server.main``:

1. ``S3Response.get_object`` returns a ``KeyBody``, a lazy view of the key's bytes, in
   place of ``key.value``. The view has what moto's response path uses (``len``,
   truthiness, the range handler's ``content[begin:end + 1]``), so range parsing, 206,
   416 InvalidRange, Content-Range, checksums and conditional requests all stay moto's own
   code; werkzeug streams the view, which reads only the bytes it sends, 1 MiB at a time.
   Upstream this would be one line of ``get_object`` (``KeyBody(key)`` for ``key.value``);
   from outside, ``get_object`` is handed a view of the key whose ``value`` is that body.
2. ``FakeMultipart.complete`` copies the parts, piece by piece, into a new spooled file,
   computing the same checksum as moto incrementally, and returns that file; the
   ``FakeKey.value`` setter adopts such a file as the key's buffer instead of writing
   bytes. ``complete_multipart_upload`` itself is untouched, so both "Object Created"
   events still go out, with the right size and the ``md5-of-md5s-N`` ETag.
3. ``S3Backend.upload_part_copy`` copies only CopySourceRange, the same way.

Reads never use the spooled file's shared position: a file still in memory is read
through a ``memoryview``, one rolled over to disk with ``os.pread`` on a duplicate of its
descriptor, so concurrent GETs of one key need no lock, and a key disposed mid-stream
(``POST /moto-api/reset``) cannot pass its descriptor number to another file under us.

Measured (``python -m bench.local_s3``, medians of 3): on a 269 MB object a 64 KiB range
takes 3.7 ms instead of 123 ms, a whole GET 0.10 s instead of 0.35 s; a 2 GB multipart
upload peaks at 0.64 GB of server RSS instead of 4.3 GB. Still whole in memory, as in moto:
a single PUT's request body and CopyObject's source.

4. DynamoDB's item operations run one at a time. moto's server is threaded and its
   ``update_item`` reads, checks and writes the item in steps, so two concurrent ``ADD``s
   on one item could both read the old count and one be lost (seen once in 100
   concurrent completion counts under load). DynamoDB makes each item write atomic;
   one lock over the backend's item operations does the same here.

5. Only this machine's clients are answered. moto's server enables CORS for every
   origin (``flask_cors``), so any web page the user had open could list the local bucket
   and read the answer, and a page's form POST (no preflight needed) could write
   ``input/`` or ``models/``. Here moto's global CORS is off, every response loses its
   ``Access-Control-*`` headers (a bucket CORS rule grants no page anything either), and
   :class:`LoopbackOnly` answers 403 to a request that :func:`shared.loopback.refusal`
   refuses: a Host other than this server's loopback address and port (DNS rebinding),
   a foreign ``Origin``, a ``Sec-Fetch-Site`` from another page. boto3 and the AWS CLI
   send neither header, so they pass.

6. SageMaker's model and transform-job operations are byom's own
   (``services/transform/api.py``), answered in this process behind the same guard
   (``infra/local/sagemaker_dispatch.py``); moto keeps every other SageMaker operation.

Written against moto 5.2.5 (pinned); tests/integration/test_local_s3.py checks the
semantics against plain moto and the bytes read per request, so an upgrade that changes
the patched functions fails there.

For measurements and tests only: ``BYOM_MOTO_S3_PATCH=0`` runs moto unpatched, and
``BYOM_MOTO_READ_COUNTER=1`` counts the bytes read out of object buffers (whole values
and ranges) and serves the total at ``GET /byom-debug/s3-read-bytes``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from moto import server
from moto.core.compat import HAS_CRT
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server import werkzeug_app
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import FakeKey, FakeMultipart, MultipartChecksumBuilder, S3Backend
from moto.s3.responses import S3Response
from moto.s3.utils import compute_checksum
from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size
from moto.utilities.utils import md5_hash

from infra.local.sagemaker_dispatch import SageMakerDispatch
from shared.loopback import refusal

CHUNK = 1024 * 1024  # bytes per read while streaming or copying: bounds memory per request
COUNTER_PATH = "/byom-debug/s3-read-bytes"
_HAS_CRC32C = importlib.util.find_spec("crc32c") is not None

Buffer = tempfile.SpooledTemporaryFile[bytes]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
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


@dataclass(frozen=True)
class _Assembled:
    """An object's bytes already in a spooled file, for the FakeKey value setter to adopt."""

    buffer: Buffer
    size: int


def _copy(
    ranges: Iterable[tuple[FakeKey, int, int]], on_chunk: Callable[[int, bytes], None]
) -> _Assembled:
    """Concatenate (key, start, stop) ranges into a new spooled file, one chunk at a time."""
    # Not a context manager: the file outlives this call, as the new key's buffer.
    out: Buffer = tempfile.SpooledTemporaryFile(max_size=get_s3_default_key_buffer_size())  # noqa: SIM115
    size = 0
    for index, (key, start, stop) in enumerate(ranges):
        for chunk in KeyBody(key, start, stop):
            out.write(chunk)
            size += len(chunk)
            on_chunk(index, chunk)
    return _Assembled(out, size)


class _Digest:
    """``compute_checksum(body, algorithm, encode_base64=False)``, fed piece by piece."""

    def __init__(self, algorithm: str) -> None:
        self._algorithm = algorithm
        self._hash: Any = None
        self._crc: int | None = None
        self._pieces: list[bytes] | None = None
        # The same choices as moto.s3.utils.compute_checksum, including its CRC32 fallbacks
        # when the optional crc32c / awscrt libraries are missing.
        if algorithm == "SHA1":
            self._hash = hashlib.sha1(usedforsecurity=False)
        elif (
            algorithm == "CRC32"
            or (algorithm == "CRC32C" and not _HAS_CRC32C)
            or (algorithm == "CRC64NVME" and not HAS_CRT)
        ):
            self._crc = 0
        elif algorithm in ("CRC32C", "CRC64NVME"):
            self._pieces = []  # library-backed: fed whole to moto's own function, as moto does
        else:
            self._hash = hashlib.sha256(usedforsecurity=False)

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self._crc is not None:
            self._crc = binascii.crc32(data, self._crc)
        else:
            assert self._pieces is not None
            self._pieces.append(data)

    def digest(self) -> bytes:
        if self._hash is not None:
            raw: bytes = self._hash.digest()
            return raw
        if self._crc is not None:
            return self._crc.to_bytes(4, "big")
        assert self._pieces is not None
        return compute_checksum(b"".join(self._pieces), self._algorithm, encode_base64=False)


def _complete(
    self: FakeMultipart, body: Iterator[tuple[int, str]]
) -> tuple[_Assembled, str, tuple[str, str, int] | None]:
    """FakeMultipart.complete, with the parts copied piecewise instead of concatenated."""
    builder = MultipartChecksumBuilder(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    parts: list[FakeKey] = []
    md5s = bytearray()
    for number, etag in body:  # moto's validation, unchanged
        part = self.parts.get(number)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise InvalidPart()
        if parts and parts[-1].contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        parts.append(part)
    if not parts:
        raise MalformedXML

    composite = builder.checksum_type == "COMPOSITE"
    digests = [_Digest(builder.checksum_algorithm) for _ in parts] if composite else []
    whole = _Digest(builder.checksum_algorithm)

    def on_chunk(index: int, chunk: bytes) -> None:
        (digests[index] if composite else whole).update(chunk)

    assembled = _copy(((part, 0, part.contentsize) for part in parts), on_chunk)
    if composite:
        for digest in digests:
            builder.checksum.extend(digest.digest())
            builder.part_count += 1
        checksum = builder.build()
    else:
        checksum = (builder.checksum_type, base64.b64encode(whole.digest()).decode(), 1)
    return assembled, f"{md5_hash(bytes(md5s)).hexdigest()}-{len(parts)}", checksum


def _upload_part_copy(
    self: S3Backend,
    dest_bucket_name: str,
    multipart_id: str,
    part_id: int,
    src_bucket_name: str,
    src_key_name: str,
    src_version_id: str | None,
    start_byte: int | None,
    end_byte: int | None,
) -> FakeKey:
    """S3Backend.upload_part_copy, copying only the source range."""
    multipart = self.get_bucket(dest_bucket_name).multiparts[multipart_id]
    source = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
    assert source is not None  # S3Response.upload_part_copy answers 404 before this
    start, stop = 0, source.size
    if start_byte is not None:
        # moto keeps value[start_byte : end_byte + 1]: the same bounds, clamped as a slice is.
        assert end_byte is not None
        start, stop, _ = slice(start_byte, end_byte + 1).indices(source.size)
        stop = max(start, stop)
    copied = _copy([(source, start, stop)], lambda *_: None)
    key: FakeKey = multipart.set_part(part_id, copied)  # type: ignore[arg-type]  # adopted
    return key


def _streaming_get_object(original: Callable[[S3Response], Any]) -> Callable[[S3Response], Any]:
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


def _value_property(setter_patch: bool) -> property:
    plain: property = FakeKey.__dict__["value"]  # the property itself, not a value

    def get_value(key: FakeKey) -> bytes:
        READS.add(key.contentsize)
        value: bytes = plain.__get__(key)
        return value

    def set_value(key: FakeKey, new_value: Any) -> None:
        if setter_patch and isinstance(new_value, _Assembled):
            key._value_buffer.close()
            key._value_buffer = new_value.buffer
            key.contentsize = new_value.size
        else:
            plain.__set__(key, new_value)

    return property(get_value, set_value)


def _serve_counter(app: type[DomainDispatcherApplication]) -> None:
    original = app.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == COUNTER_PATH:
            body = json.dumps({"bytes_read": READS.total}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return original(self, environ, start_response)

    app.__call__ = call  # type: ignore[method-assign]


# DynamoDB's item-level operations: each one is atomic on AWS (see the module's 4.).
_DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)
_DYNAMODB_LOCK = threading.RLock()


def _one_at_a_time(operation: Callable[..., Any]) -> Callable[..., Any]:
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return operation(*args, **kwargs)

    serialised.__wrapped__ = operation  # type: ignore[attr-defined]
    return serialised


def serialise_dynamodb() -> None:
    """Make moto's DynamoDB item operations atomic, as DynamoDB's are (idempotent)."""
    for name in _DYNAMODB_ITEM_OPERATIONS:
        operation = getattr(DynamoDBBackend, name)
        if not hasattr(operation, "__wrapped__"):
            setattr(DynamoDBBackend, name, _one_at_a_time(operation))


def apply(*, patch: bool = True, count_reads: bool = False) -> None:
    """Patch moto's S3 in this process (``patch``) and/or count buffer reads; DynamoDB's
    item operations are made atomic either way."""
    serialise_dynamodb()
    READS.enabled = count_reads
    if patch or count_reads:
        FakeKey.value = _value_property(setter_patch=patch)  # type: ignore[method-assign,assignment]
    if count_reads:
        _serve_counter(DomainDispatcherApplication)
    if patch:
        S3Response.get_object = _streaming_get_object(S3Response.get_object)  # type: ignore[method-assign,assignment]
        FakeMultipart.complete = _complete  # type: ignore[method-assign,assignment]
        S3Backend.upload_part_copy = _upload_part_copy  # type: ignore[method-assign]


class LoopbackOnly:
    """WSGI middleware: 403 to any request from a web page or for another host (the
    module's 5.), and no ``Access-Control-*`` header on any answer."""

    def __init__(self, app: WsgiApp, port: int) -> None:
        self._app = app
        self._port = port

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        reason = refusal(
            environ.get("HTTP_HOST"),
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_SEC_FETCH_SITE"),
            self._port,
        )
        if reason is not None:
            body = reason.encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]

        def start_without_cors(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept, *rest)

        return self._app(environ, start_without_cors)


def loopback_only() -> None:
    """Serve moto behind :class:`LoopbackOnly`, with its global CORS off (idempotent);
    byom's SageMaker operations are answered by byom (``sagemaker_dispatch.py``)."""
    # Read by create_backend_app when it builds each service's app, so this takes
    # effect although moto.settings read MOTO_DISABLE_GLOBAL_CORS at import.
    werkzeug_app.DISABLE_GLOBAL_CORS = True  # type: ignore[attr-defined]
    run = server.run_simple  # type: ignore[attr-defined]
    if getattr(run, "loopback_only", False):
        return

    def run_simple(hostname: str, port: int, application: WsgiApp, **options: Any) -> None:
        run(hostname, port, LoopbackOnly(SageMakerDispatch(application), port), **options)

    run_simple.loopback_only = True  # type: ignore[attr-defined]
    server.run_simple = run_simple  # type: ignore[attr-defined,assignment]


def main() -> None:
    loopback_only()
    apply(
        patch=os.environ.get("BYOM_MOTO_S3_PATCH", "1") != "0",
        count_reads=os.environ.get("BYOM_MOTO_READ_COUNTER") == "1",
    )
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
