"""A media chunk's items read from S3: each GET pinned to the version ingest planned with,
or a member of the job's zip archive, opened once per chunk.

An item that is gone, replaced or over BYOM_MAX_IMAGE_BYTES raises :class:`InputError`
naming it; the chunk's policy decides what that costs the job.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from services.inference_worker.archive import Archive
from shared import aws
from shared.errors import InputError
from shared.schemas import ChunkPlan, MediaItem
from shared.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class MediaFetcher:
    """The bytes of one chunk's items, from S3 or from the job's archive."""

    def __init__(self, s3: S3Client, plan: ChunkPlan, settings: Settings) -> None:
        assert plan.media is not None
        self.s3, self.plan, self.settings = s3, plan, settings
        self.opening = asyncio.Lock()
        self._archive: Archive | None = None
        # A zip job's plan names the archive itself: its key, ETag and size.
        self.plan_archive_size = plan.size if plan.media.source == "archive" else 0

    async def archive(self, item: MediaItem) -> Archive:
        async with self.opening:
            if self._archive is None:
                assert item.etag is not None
                self._archive = await asyncio.to_thread(
                    Archive, self.plan.bucket, item.key, item.etag, self.plan_archive_size
                )
        return self._archive

    async def fetch(self, item: MediaItem, uri: str, line: int | None) -> bytes:
        if item.etag is None:
            raise InputError(uri, "does not exist (or cannot be read)", line=line)
        if item.size > self.settings.max_image_bytes and item.kind == "image":
            raise InputError(
                uri,
                f"the image is {item.size} bytes, over the {self.settings.max_image_bytes}-byte "
                "limit (BYOM_MAX_IMAGE_BYTES)",
                line=line,
            )
        if item.member is not None:
            archive = await self.archive(item)
            limit = self.settings.max_image_bytes
            return await asyncio.to_thread(archive.read, item.member, uri, line, limit)
        response = await self.get(item, uri, line)
        data: bytes = await response["Body"].read()
        return data

    async def get(self, item: MediaItem, uri: str, line: int | None) -> Any:
        """The item's GET, pinned to the version ingest planned with."""
        try:
            return await self.s3.get_object(
                Bucket=self.plan.bucket, Key=item.key, IfMatch=aws.if_match(item.etag or "")
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                raise InputError(uri, "does not exist any more", line=line) from None
            if status == 412:
                raise InputError(
                    uri, "was replaced after the job started; upload the job again", line=line
                ) from None
            raise

    async def download(self, item: MediaItem, uri: str, line: int | None, path: Path) -> None:
        if item.etag is None:
            raise InputError(uri, "does not exist (or cannot be read)", line=line)
        if item.member is not None:
            archive = await self.archive(item)
            await asyncio.to_thread(archive.extract, item.member, uri, line, path)
            return
        response = await self.get(item, uri, line)
        with path.open("wb") as out:
            async for block in response["Body"].iter_chunks(1024 * 1024):
                out.write(block)

    def close(self) -> None:
        """Close the archive, if an item opened it."""
        if self._archive is not None:
            self._archive.close()
