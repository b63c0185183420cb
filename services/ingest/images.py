"""Plan an image or video job: which objects, in which order, in which chunks.

Nothing is decoded here (ingest runs in Lambda, without Pillow or PyAV): the plan
is made from keys and sizes. An upload is

- one image or one video under ``input/``: a job of that one item;
- a manifest ``input/<name>.manifest.jsonl``: one item a line, in order, either a
  key as a JSON string (``"images/cat.jpg"``), ``{"source-ref": "s3://bucket/key"}``
  as SageMaker Ground Truth's augmented manifests write it, or ``{"prefix":
  "s3://bucket/images/"}`` for every image and video under that prefix, in key
  order (as SageMaker's ``S3Prefix``);
- a manifest ``input/<name>.manifest.csv``: one key or ``s3://`` URI a line (a
  first line ``key`` or ``source-ref`` is a header);
- a manifest ``input/<name>.manifest.json`` in SageMaker's ``ManifestFile`` format:
  ``[{"prefix": "s3://bucket/images/"}, "a.jpg", "b/c.jpg"]``;
- a zip archive ``input/<name>.zip``: its images and videos in archive order (other
  files are passed over), found from its central directory by ranged reads.

Items live in the job's own bucket, outside byom's own prefixes. Chunks hold up
to ``BYOM_IMAGE_CHUNK_COUNT`` images and ``BYOM_IMAGE_CHUNK_BYTES``; a video is a
chunk of its own (its frames are counted by the worker that decodes it).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shared import aws, formats, zip_members
from shared.errors import InputError
from shared.s3_file import open_object
from shared.schemas import (
    BadRows,
    Chunk,
    ChunkPlan,
    MediaItem,
    MediaPlan,
    MediaSourcePlan,
    RowPolicy,
)
from shared.settings import get_settings

if TYPE_CHECKING:
    from services.ingest.upload import Upload

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_HEADS_IN_FLIGHT = 32  # the S3 client's connection pool (shared/aws.py)


@dataclass(frozen=True)
class _Ref:
    line: int
    key: str
    prefix: bool = False


def plan_media(job_id: str, upload: Upload, policy: RowPolicy) -> ChunkPlan:
    """The chunk plan of a media upload; raises ``InputError`` naming line and key."""
    settings = get_settings()
    source = formats.media_source(upload.key)
    assert source is not None
    if source == "manifest":
        items = _manifest_items(upload, policy)
    elif source == "archive":
        items = archive_items(upload)
    else:
        items = [MediaItem(key=upload.key, kind=source, size=upload.size, etag=upload.etag, line=1)]
    if policy.on_bad_rows is BadRows.FAIL:
        for item in items:
            if item.size > settings.max_image_bytes and item.kind == "image":
                raise InputError(
                    f"s3://{upload.bucket}/{item.key}",
                    f"the image is {item.size} bytes, over the {settings.max_image_bytes}-byte "
                    "limit (BYOM_MAX_IMAGE_BYTES)",
                )
    options = upload.options
    media = MediaPlan(
        items=tuple(items),
        draw=options.draw_mode(upload.uri, default=settings.image_draw),
        frame_rate=options.frames_per_second(upload.uri, default=settings.video_frame_rate),
        source=source,
    )
    return ChunkPlan(
        job_id=job_id,
        bucket=upload.bucket,
        key=upload.key,
        etag=upload.etag,
        size=upload.size,  # the upload's own (a zip's members are read by ranges of it)
        policy=policy,
        chunks=media_chunks(items, settings.image_chunk_count, settings.image_chunk_bytes),
        source=MediaSourcePlan(media=media),
    )


def media_chunks(items: list[MediaItem], max_count: int, max_bytes: int) -> tuple[Chunk, ...]:
    """Consecutive runs of images by count and bytes; each video alone."""
    chunks: list[Chunk] = []
    start, count, size = 0, 0, 0
    for index, item in enumerate(items):
        full = count >= max_count or (count and size + item.size > max_bytes)
        if count and (full or item.kind == "video" or items[index - 1].kind == "video"):
            chunks.append(Chunk(index=len(chunks), start=start, end=index))
            start, count, size = index, 0, 0
        count += 1
        size += item.size
    chunks.append(Chunk(index=len(chunks), start=start, end=len(items)))
    return tuple(chunks)


def _manifest_items(upload: Upload, policy: RowPolicy) -> list[MediaItem]:
    if upload.size > MAX_MANIFEST_BYTES:
        raise InputError(
            upload.uri, f"the manifest is {upload.size} bytes, over {MAX_MANIFEST_BYTES}"
        )
    body = (
        aws.s3()
        .get_object(Bucket=upload.bucket, Key=upload.key, IfMatch=aws.if_match(upload.etag))["Body"]
        .read()
    )
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(upload.uri, "the manifest is not UTF-8 text") from exc
    lowered = upload.key.lower()
    if lowered.endswith(".jsonl"):
        refs = _jsonl_refs(upload, text)
    elif lowered.endswith(".json"):
        refs = _sagemaker_refs(upload, text)
    else:
        refs = _csv_refs(upload, text)
    if not refs:
        raise InputError(upload.uri, "the manifest lists no images; one key a line")
    items: list[MediaItem] = []
    limit = get_settings().max_manifest_items
    plain = [ref for ref in refs if not ref.prefix]
    # Past limit + 1 keys the loop below has refused the manifest: no HEADs for them.
    found = _head_all(upload.bucket, [ref.key for ref in plain[: limit + 1]])
    for ref in refs:
        if ref.prefix:
            # Listed no further than one past the limit: a prefix of millions of keys
            # is refused after a page or two, not after listing them all.
            items.extend(_listed(upload, ref, limit + 1 - len(items)))
        else:
            head = found[ref.key]
            if head is None and policy.on_bad_rows is BadRows.FAIL:
                raise InputError(
                    upload.uri,
                    f"s3://{upload.bucket}/{ref.key} does not exist (or cannot be read)",
                    line=ref.line,
                )
            kind = formats.media_source(ref.key)
            assert kind in ("image", "video")
            size, etag = head if head is not None else (0, None)
            items.append(MediaItem(key=ref.key, kind=kind, size=size, etag=etag, line=ref.line))
        if len(items) > limit:
            raise InputError(
                upload.uri,
                f"the manifest lists more than {limit} images (BYOM_MAX_MANIFEST_ITEMS); "
                "split it into several manifests",
                line=ref.line,
            )
    if not items:
        raise InputError(upload.uri, "the manifest's prefixes hold no images or videos")
    return items


def archive_items(upload: Upload) -> list[MediaItem]:
    """The images and videos of a zip archive, from its central directory only."""
    file = open_object(upload.bucket, upload.key, upload.etag, upload.size)
    with zip_members.open_archive(file, upload.uri) as archive:
        members = zip_members.media_members(
            archive, upload.uri, max_items=get_settings().max_manifest_items
        )
    items = [
        MediaItem(key=upload.key, member=m.name, kind=m.kind, size=m.size, etag=upload.etag,
                  line=m.line)
        for m in members
    ]  # fmt: skip
    if not items:
        allowed = ", ".join(formats.IMAGE_SUFFIXES + formats.VIDEO_SUFFIXES)
        raise InputError(upload.uri, f"the archive holds no images or videos ({allowed})")
    return items


def _jsonl_refs(upload: Upload, text: str) -> list[_Ref]:
    refs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                upload.uri, f"not JSON: {exc.msg}", line=number, column=exc.colno
            ) from None
        if isinstance(entry, str):
            refs.append(_ref(upload, entry, number))
        elif isinstance(entry, dict) and isinstance(entry.get("source-ref"), str):
            refs.append(_ref(upload, entry["source-ref"], number))
        elif isinstance(entry, dict) and isinstance(entry.get("prefix"), str):
            refs.append(_ref(upload, entry["prefix"], number, prefix=True))
        else:
            raise InputError(
                upload.uri,
                'expected a key ("images/a.jpg"), {"source-ref": "s3://bucket/key"} or '
                '{"prefix": "s3://bucket/prefix/"}',
                line=number,
            )
    return refs


def _sagemaker_refs(upload: Upload, text: str) -> list[_Ref]:
    """SageMaker's ManifestFile: `[{"prefix": "s3://bucket/p/"}, "a.jpg", "b/c.jpg"]`,
    keys relative to the prefix; an entry's "line" is its place in the list."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            upload.uri, f"not JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from None
    if (
        not isinstance(document, list)
        or not document
        or not isinstance(document[0], dict)
        or not isinstance(document[0].get("prefix"), str)
    ):
        raise InputError(
            upload.uri,
            'expected SageMaker\'s manifest: [{"prefix": "s3://bucket/prefix/"}, "key", ...]',
        )
    prefix = document[0]["prefix"]
    refs = []
    for number, entry in enumerate(document[1:], start=2):
        if not isinstance(entry, str):
            raise InputError(upload.uri, f"entry {number} is not a key relative to the prefix")
        refs.append(_ref(upload, prefix + entry, number))
    return refs


def _csv_refs(upload: Upload, text: str) -> list[_Ref]:
    refs = []
    for number, line in enumerate(text.splitlines(), start=1):
        cell = line.strip().strip('"')
        if not cell or (number == 1 and cell.lower() in ("key", "source-ref")):
            continue
        refs.append(_ref(upload, cell, number))
    return refs


def _ref(upload: Upload, text: str, line: int, *, prefix: bool = False) -> _Ref:
    key = text
    if text.startswith("s3://"):
        bucket, _, key = text.removeprefix("s3://").partition("/")
        if bucket != upload.bucket:
            raise InputError(
                upload.uri,
                f"{text!r} is in bucket {bucket!r}; images must be in {upload.bucket!r}",
                line=line,
            )
    key = key.lstrip("/") if prefix else key
    own = _own_prefixes()
    if not key or ".." in key.split("/") or "\x00" in key or len(key) > 1024:
        raise InputError(upload.uri, f"{text!r} is not an S3 key", line=line)
    if key.startswith(own):
        where = key.split("/")[0]
        raise InputError(upload.uri, f"{text!r} is inside byom's own {where}/", line=line)
    if not prefix and formats.media_source(key) not in ("image", "video"):
        allowed = ", ".join(formats.IMAGE_SUFFIXES + formats.VIDEO_SUFFIXES)
        raise InputError(upload.uri, f"{text!r} is not an image or video ({allowed})", line=line)
    return _Ref(line=line, key=key, prefix=prefix)


def _head_all(bucket: str, keys: list[str]) -> dict[str, tuple[int, str] | None]:
    """Size and ETag of each key (None: not there), 32 HEADs in flight."""
    s3 = aws.s3()

    def head(key: str) -> tuple[int, str] | None:
        try:
            response = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (403, 404):
                return None
            raise
        return response["ContentLength"], response["ETag"].strip('"')

    unique = list(dict.fromkeys(keys))
    with ThreadPoolExecutor(_HEADS_IN_FLIGHT) as pool:
        return dict(zip(unique, pool.map(head, unique), strict=True))


def _own_prefixes() -> tuple[str, ...]:
    settings = get_settings()
    return (
        settings.staging_prefix,
        settings.output_prefix,
        settings.errors_prefix,
        settings.models_prefix,
    )


def _listed(upload: Upload, ref: _Ref, most: int) -> list[MediaItem]:
    """The images and videos under the prefix, in key order, at most ``most`` of them.

    A prefix is a string, not a folder: ``out`` also lists ``output/``, so keys under
    byom's own prefixes are left out here, whatever the prefix was.
    """
    paginator = aws.s3().get_paginator("list_objects_v2")
    own = _own_prefixes()
    items: list[MediaItem] = []
    for page in paginator.paginate(Bucket=upload.bucket, Prefix=ref.key):
        for obj in page.get("Contents", []):
            kind = formats.media_source(obj["Key"])
            if kind in ("image", "video") and not obj["Key"].startswith(own):
                items.append(
                    MediaItem(
                        key=obj["Key"],
                        kind=kind,
                        size=obj["Size"],
                        etag=obj["ETag"].strip('"'),
                        line=ref.line,
                    )
                )
        if len(items) >= most:
            return items[:most]
    return items
