"""Score one chunk of an image or video job: decode, resize, detect, draw, record.

The worker does every CPU-heavy step (decode, resize, draw) so that the endpoint,
perhaps a GPU, only runs the model: requests are uint8 pixels of the model's input
size as ``application/x-npy``, several images each, several requests in flight,
and the model server batches them across calls. The chunk's output is JSON Lines,
one record per image (per sampled frame for a video), in the upload's order::

    {"key": "images/cat.jpg", "width": 640, "height": 480,
     "detections": [{"box": [x1, y1, x2, y2], "label": "cat", "class": 15, "score": 0.91}],
     "annotated": "s3://bucket/output/<ts>-<name>/000000-cat.jpg.jpg"}

Boxes are in the original image's pixels. A classifier's records carry
``"classes"`` instead of ``"detections"``; a frame's record adds ``"frame"`` and
``"time"`` (seconds). An item that cannot be read fails the job, or under the skip
policy gets ``{"key": ..., "error": ...}`` in its place and a line in the job's
errors report. Drawn images are staged, and published by status with the output.

This module runs the chunk: images in rounds that the child's memory holds
(``media_budget.py``), videos frame by frame. Items are read by ``media_fetch.py``;
batches go to the endpoint and come back as records in ``image_batches.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.inference_worker import pixels, video
from services.inference_worker.endpoint import Endpoint
from services.inference_worker.image_batches import BatchScorer, ImageBatch
from services.inference_worker.media_budget import media_budget
from services.inference_worker.media_fetch import MediaFetcher
from services.inference_worker.scoring import ChunkResult, store_chunk
from shared import media
from shared.errors import InputError
from shared.formats import JSONL_TYPE
from shared.schemas import Chunk, ChunkPlan, MediaItem
from shared.settings import Settings

if TYPE_CHECKING:
    from PIL import Image
    from types_aiobotocore_s3 import S3Client

_GETS_IN_FLIGHT = 8


class MediaChunk:
    def __init__(
        self,
        s3: S3Client,
        endpoint: Endpoint,
        plan: ChunkPlan,
        chunk: Chunk,
        *,
        uri: str,
        output_key: str,
        settings: Settings,
    ) -> None:
        assert plan.media is not None
        self.s3, self.plan, self.chunk = s3, plan, chunk
        self.media = plan.media
        self.uri, self.settings = uri, settings
        self.manifest = plan.media.source == "manifest"
        self.rejected: dict[int, InputError] = {}
        self.fetcher = MediaFetcher(s3, plan, settings)
        self.scorer = BatchScorer(s3, endpoint, plan, output_key=output_key, settings=settings)
        self.budget = media_budget(
            memory_mib=settings.worker_memory_mib,
            max_pixels=settings.max_image_pixels,
            drawing=plan.media.draw != "none",
            chunks_in_flight=settings.worker_chunks_in_flight,
        )

    def where(self, item: MediaItem) -> tuple[str, int | None]:
        """How errors name an item: its own URI (and archive member), and its line in the
        manifest (or its place in the archive)."""
        uri = f"s3://{self.plan.bucket}/{item.key}"
        if item.member is not None:
            return f"{uri} (member {item.member!r})", item.line
        return uri, item.line if self.manifest else None

    @staticmethod
    def identity(item: MediaItem) -> dict[str, Any]:
        """The record's first fields: which image it is about."""
        if item.member is None:
            return {"key": item.key}
        return {"key": item.key, "member": item.member}

    async def run(self) -> ChunkResult:
        items = list(enumerate(self.media.items))[self.chunk.start : self.chunk.end]
        records: list[list[dict[str, Any]]] = [[] for _ in items]
        images = [(n, i, item) for n, (i, item) in enumerate(items) if item.kind == "image"]
        slots = asyncio.Semaphore(_GETS_IN_FLIGHT)
        rounds_in_flight = asyncio.Semaphore(2)  # one decoded while the other is scored

        decoding = asyncio.Semaphore(self.budget.decodes)

        async def load(batch: ImageBatch, slot: int, index: int, item: MediaItem) -> None:
            """Read, decode and resize one image; only its small resized copy stays
            (and the original, when it is to be drawn). Reads run eight at a time;
            decodes as many as the child's memory holds (media_budget.py)."""
            async with slots:
                data = await self.fetch_image(index, item)
            if data is None:
                records[slot] = [self.error_record(index, item)]
                return
            async with decoding:
                image = await self.decode_image(index, item, data)
                del data
                if image is None:
                    records[slot] = [self.error_record(index, item)]
                    return
                spec = await self.scorer.model_spec()
                prepared = await asyncio.to_thread(pixels.prepare, image, spec)
            record = self.identity(item) | {"width": image.width, "height": image.height}
            records[slot] = [record]
            self.scorer.add(batch, prepared, image, record, index, item, None)

        async def round_of(some: list[tuple[int, int, MediaItem]]) -> None:
            """A round of images read, scored and drawn: memory holds two rounds'
            originals at most, however large the chunk."""
            async with rounds_in_flight:
                batch = ImageBatch()
                await asyncio.gather(*(load(batch, slot, i, item) for slot, i, item in some))
                await self.scorer.score(batch)

        each = self.budget.images_per_round
        await asyncio.gather(*(round_of(images[i : i + each]) for i in range(0, len(images), each)))
        for slot, (index, item) in enumerate(items):
            if item.kind == "video":
                records[slot] = await self.video_records(index, item)
        self.fetcher.close()
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for rs in records for r in rs]
        return await self.store("".join(lines).encode(), len(lines))

    def reject(self, index: int, error: InputError) -> None:
        self.rejected[index] = error  # under FAIL, the first: it ends the chunk at once
        self.plan.policy.enforce(self.rejected, uri=self.uri, what="bad images in this chunk")

    def error_record(self, index: int, item: MediaItem) -> dict[str, Any]:
        return self.identity(item) | {"error": self.rejected[index].reason}

    def frames_per_round(self, frame: Image.Image) -> int:
        """Video frames held at once: sized to this video's frames, not the largest
        image the settings allow (a 1080p frame is 2 megapixels, not 40)."""
        return media_budget(
            memory_mib=self.settings.worker_memory_mib,
            max_pixels=frame.width * frame.height,
            drawing=self.media.draw != "none",
            chunks_in_flight=self.settings.worker_chunks_in_flight,
        ).frames_per_round

    async def fetch_image(self, index: int, item: MediaItem) -> bytes | None:
        """The image's bytes; None when it is rejected (the policy decides)."""
        uri, line = self.where(item)
        try:
            return await self.fetcher.fetch(item, uri, line)
        except InputError as exc:
            self.reject(index, exc)
            return None

    async def decode_image(self, index: int, item: MediaItem, data: bytes) -> Image.Image | None:
        uri, line = self.where(item)
        try:
            return await asyncio.to_thread(
                pixels.decode, data, uri, max_pixels=self.settings.max_image_pixels, line=line
            )
        except InputError as exc:
            self.reject(index, exc)
            return None

    async def video_records(self, index: int, item: MediaItem) -> list[dict[str, Any]]:
        uri, line = self.where(item)
        with tempfile.TemporaryDirectory(prefix="byom-video-") as scratch:
            path = Path(scratch) / "video"
            try:
                await self.fetcher.download(item, uri, line, path)
                return await self.detect_frames(index, item, uri, line, path)
            except InputError as exc:
                self.reject(index, exc)
                return [self.error_record(index, item)]

    async def detect_frames(
        self, index: int, item: MediaItem, uri: str, line: int | None, path: Path
    ) -> list[dict[str, Any]]:
        spec = await self.scorer.model_spec()
        sampled: Iterator[video.Frame] = video.frames(
            path, uri, rate=self.media.frame_rate, max_frames=self.settings.max_video_frames,
            max_pixels=self.settings.max_image_pixels, line=line,
        )  # fmt: skip
        records: list[dict[str, Any]] = []
        drawn_path = path.with_suffix(".annotated.mp4")
        drawing = self.media.draw != "none"
        annotated = video.AnnotatedVideo(drawn_path, self.media.frame_rate)

        def next_round(batch: ImageBatch) -> list[dict[str, Any]]:
            taken: list[dict[str, Any]] = []
            for frame in sampled:
                record = self.identity(item) | {"frame": frame.index, "time": frame.time}
                record |= {"width": frame.image.width, "height": frame.image.height}
                taken.append(record)
                prepared = pixels.prepare(frame.image, spec)
                self.scorer.add(batch, prepared, frame.image, record, index, item, frame.index)
                if len(taken) >= self.frames_per_round(frame.image):
                    break
            return taken

        def draw_round(originals: list[Image.Image | None], taken: list[dict[str, Any]]) -> None:
            for image, record in zip(originals, taken, strict=True):
                if image is not None:
                    annotated.add(pixels.draw(image, record.get("detections", [])))

        try:
            while True:
                batch = ImageBatch()
                taken = await asyncio.to_thread(next_round, batch)
                if not taken:
                    break
                await self.scorer.score(batch)
                records.extend(taken)
                if drawing:
                    await asyncio.to_thread(draw_round, batch.originals, taken)
        finally:
            await asyncio.to_thread(annotated.close)
        if annotated.frames:
            name = media.drawn_name(index, item.member or item.key, "mp4")
            with drawn_path.open("rb") as body:
                await self.s3.put_object(
                    Bucket=self.plan.bucket,
                    Key=media.staged_drawn_prefix(self.plan.job_id) + name,
                    Body=body,
                    ContentType="video/mp4",
                )
            for record in records:
                record["annotated"] = self.scorer.drawn_uri + name
        return records

    async def store(self, output: bytes, records: int) -> ChunkResult:
        # The report's reason names the image itself; its line is the manifest's.
        named = {
            index: InputError(error.uri, f"{error.uri}: {error.reason}", line=error.line)
            for index, error in self.rejected.items()
        }
        return await store_chunk(
            self.s3, self.plan, self.chunk, output, rows=records, rejected=named,
            content_type=JSONL_TYPE,
        )  # fmt: skip


async def score_media_chunk(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    """The chunk's JSON Lines records, stored in staging like any chunk output."""
    return await MediaChunk(
        s3, endpoint, plan, chunk, uri=uri, output_key=output_key, settings=settings
    ).run()
