"""The local S3's multipart completion and part copies, streamed into a new spooled file.

Why: in moto 5.2.5, completing a multipart upload concatenates every part into one
``bytearray`` (plus copies for ``bytes()`` and the full-object checksum), and
UploadPartCopy reads the whole source object to keep a range of it.

1. ``FakeMultipart.complete`` (:func:`complete_multipart`) copies the parts, piece by
   piece, into a new spooled file, computing the same checksum as moto incrementally, and
   returns that file; the ``FakeKey.value`` setter (:func:`value_property`) adopts such a
   file as the key's buffer instead of writing bytes. ``complete_multipart_upload`` itself
   is untouched, so both "Object Created" events still go out, with the right size and the
   ``md5-of-md5s-N`` ETag.
2. ``S3Backend.upload_part_copy`` (:func:`upload_part_copy`) copies only CopySourceRange,
   the same way.

The copies read their sources through ``moto_s3_reads.KeyBody``, 1 MiB at a time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from moto.core.compat import HAS_CRT
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import FakeKey, FakeMultipart, MultipartChecksumBuilder, S3Backend
from moto.s3.utils import compute_checksum
from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size
from moto.utilities.utils import md5_hash

from infra.local.moto_s3_reads import READS, Buffer, KeyBody

_HAS_CRC32C = importlib.util.find_spec("crc32c") is not None


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


def complete_multipart(
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


def upload_part_copy(
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


def value_property(setter_patch: bool) -> property:
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
