"""Inflate a gzip upload into staging, so that it can be chunked by byte ranges.

Streams: the compressed object is read in blocks and the inflated bytes go out as
multipart parts, so memory stays at a few blocks whatever the size. The inflated
size and the compression ratio are capped, which stops decompression bombs
after reading only as much as it takes to see one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from shared import aws
from shared.errors import InputError
from shared.formats import CSV_TYPE
from shared.multipart import MultipartWriter

GZIP_MAGIC = b"\x1f\x8b"
_READ = 1024 * 1024
# Small files can compress extremely well (a column of zeros); the ratio limit
# starts to apply only past this many inflated bytes.
_RATIO_FLOOR = 16 * 1024 * 1024


@dataclass(frozen=True)
class Staged:
    key: str
    etag: str
    size: int


def inflate_to(
    bucket: str,
    key: str,
    etag: str,
    target_key: str,
    *,
    max_bytes: int,
    max_ratio: int,
    uri: str,
    target_bucket: str | None = None,
) -> Staged:
    """Inflate ``bucket/key`` (version ``etag``) into ``target_key`` of
    ``target_bucket`` (default: the same bucket)."""
    s3 = aws.s3()
    body = s3.get_object(Bucket=bucket, Key=key, IfMatch=aws.if_match(etag))["Body"]
    read = written = 0
    in_member = False
    # wbits 16+MAX_WBITS: gzip framing; members are concatenated by looping below.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with MultipartWriter(
            s3, target_bucket or bucket, target_key, content_type=CSV_TYPE
        ) as staged:
            while block := body.read(_READ):
                read += len(block)
                data = block
                while data:
                    in_member = True
                    out = inflater.decompress(data, _READ)
                    data = inflater.unconsumed_tail
                    if inflater.eof:
                        data = inflater.unused_data + data
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        in_member = False
                    written += len(out)
                    _check_limits(read, written, max_bytes=max_bytes, max_ratio=max_ratio, uri=uri)
                    staged.write(out)
            if in_member:
                raise InputError(uri, "is a truncated gzip file")
            staged_etag = staged.complete()
    except zlib.error as exc:
        raise InputError(uri, f"is not valid gzip: {exc}") from None
    return Staged(key=target_key, etag=staged_etag, size=written)


def _check_limits(read: int, written: int, *, max_bytes: int, max_ratio: int, uri: str) -> None:
    if written > max_bytes:
        raise InputError(
            uri, f"inflates to more than the {max_bytes}-byte limit (BYOM_MAX_FILE_BYTES)"
        )
    if written > _RATIO_FLOOR and written > max_ratio * read:
        raise InputError(
            uri,
            f"inflates more than {max_ratio} times (BYOM_MAX_COMPRESSION_RATIO); "
            "refusing what looks like a decompression bomb",
        )
