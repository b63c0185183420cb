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
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from services.inference_worker import pixels, video
from services.inference_worker.archive import Archive
from services.inference_worker.endpoint import Endpoint
from services.inference_worker.media_budget import media_budget
from services.inference_worker.scoring import ChunkResult, store_chunk
from shared import aws, media
from shared.errors import InputError, ModelError, PredictionCountError
from shared.formats import JSON_TYPE, JSONL_TYPE, NPY_TYPE
from shared.schemas import Chunk, ChunkPlan, MediaItem
from shared.settings import Settings

if TYPE_CHECKING:
    from PIL import Image
    from types_aiobotocore_s3 import S3Client

NPY, JSON = NPY_TYPE, JSON_TYPE
DESCRIBE = "application/vnd.byom.describe+json"
_GETS_IN_FLIGHT = 8


async def describe(endpoint: Endpoint) -> pixels.VisionSpec:
    """What the endpoint's model needs, asked through the endpoint itself."""
    try:
        answer = await endpoint.invoke(b"{}", content_type=DESCRIBE, accept=JSON)
        return pixels.VisionSpec.of(json.loads(answer))
    except ModelError as exc:
        raise ModelError(
            f"the endpoint's model is not an image model (a package with an [image] table "
            f"in its byom.toml): {exc}"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"the endpoint described its model as {answer[:200]!r}: {exc}") from exc


@dataclass
class _Batch:
    """Prepared images waiting to be sent, with where each one's record goes."""

    prepared: list[pixels.Prepared] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # filled in when scored
    names: list[str | None] = field(default_factory=list)  # the drawn image's, if drawn
    originals: list[Image.Image | None] = field(default_factory=list)


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
        self.s3, self.endpoint, self.plan, self.chunk = s3, endpoint, plan, chunk
        self.media = plan.media
        self.uri, self.settings = uri, settings
        self.drawn_uri = f"s3://{plan.bucket}/{media.drawn_prefix(output_key)}"
        self.manifest = plan.media.source == "manifest"
        self.rejected: dict[int, InputError] = {}
        self.spec: pixels.VisionSpec | None = None
        self.describing = asyncio.Lock()
        self.opening = asyncio.Lock()
        self._archive: Archive | None = None
        # A zip job's plan names the archive itself: its key, ETag and size.
        self.plan_archive_size = plan.size if plan.media.source == "archive" else 0
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

    async def archive(self, item: MediaItem) -> Archive:
        async with self.opening:
            if self._archive is None:
                assert item.etag is not None
                self._archive = await asyncio.to_thread(
                    Archive, self.plan.bucket, item.key, item.etag, self.plan_archive_size
                )
        return self._archive

    async def model_spec(self) -> pixels.VisionSpec:
        async with self.describing:  # one request, however many images wait for it
            if self.spec is None:
                self.spec = await describe(self.endpoint)
        return self.spec

    async def run(self) -> ChunkResult:
        items = list(enumerate(self.media.items))[self.chunk.start : self.chunk.end]
        records: list[list[dict[str, Any]]] = [[] for _ in items]
        images = [(n, i, item) for n, (i, item) in enumerate(items) if item.kind == "image"]
        slots = asyncio.Semaphore(_GETS_IN_FLIGHT)
        rounds_in_flight = asyncio.Semaphore(2)  # one decoded while the other is scored

        decoding = asyncio.Semaphore(self.budget.decodes)

        async def load(batch: _Batch, slot: int, index: int, item: MediaItem) -> None:
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
                spec = await self.model_spec()
                prepared = await asyncio.to_thread(pixels.prepare, image, spec)
            record = self.identity(item) | {"width": image.width, "height": image.height}
            records[slot] = [record]
            self.add(batch, prepared, image, record, index, item, None)

        async def round_of(some: list[tuple[int, int, MediaItem]]) -> None:
            """A round of images read, scored and drawn: memory holds two rounds'
            originals at most, however large the chunk."""
            async with rounds_in_flight:
                batch = _Batch()
                await asyncio.gather(*(load(batch, slot, i, item) for slot, i, item in some))
                await self.score(batch)

        each = self.budget.images_per_round
        await asyncio.gather(*(round_of(images[i : i + each]) for i in range(0, len(images), each)))
        for slot, (index, item) in enumerate(items):
            if item.kind == "video":
                records[slot] = await self.video_records(index, item)
        if self._archive is not None:
            self._archive.close()
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
            return await self.fetch(item, uri, line)
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

    def add(
        self,
        batch: _Batch,
        prepared: pixels.Prepared,
        image: Image.Image,
        record: dict[str, Any],
        index: int,
        item: MediaItem,
        frame: int | None,
    ) -> None:
        """One resized image into the batch; its record is filled in when scored."""
        batch.prepared.append(prepared)
        batch.records.append(record)
        drawing = self.media.draw != "none"
        suffix = "png" if self.media.draw == "png" else "jpg"
        single = drawing and frame is None  # a video's frames go into one drawn video
        name = media.drawn_name(index, item.member or item.key, suffix) if single else None
        batch.names.append(name)
        batch.originals.append(image if drawing else None)

    async def score(self, batch: _Batch) -> None:
        """Send the batch's images in requests of at most BYOM_REQUEST_BYTES, all at once."""
        if not batch.prepared:
            return
        spec = await self.model_spec()
        per_image = spec.height * spec.width * 3
        per_request = max(1, (self.settings.request_bytes - 256) // per_image)
        groups = [
            range(start, min(start + per_request, len(batch.prepared)))
            for start in range(0, len(batch.prepared), per_request)
        ]

        async def send(group: range) -> list[dict[str, Any]]:
            stacked = np.stack([batch.prepared[i].pixels for i in group])
            buffer = io.BytesIO()
            np.save(buffer, stacked, allow_pickle=False)
            answer = await self.endpoint.invoke(buffer.getvalue(), content_type=NPY, accept=JSON)
            found = json.loads(answer).get("predictions")
            if isinstance(found, list) and len(found) != len(group):
                raise PredictionCountError(
                    len(found), len(group), request=groups.index(group) + 1, requests=len(groups)
                )
            if not isinstance(found, list):
                raise ModelError(f"the endpoint answered {answer[:200]!r} for {len(group)} images")
            return found

        answers = await asyncio.gather(*(send(group) for group in groups))
        results = [result for answer in answers for result in answer]
        drawn = []
        for prepared, record, name, original, result in zip(
            batch.prepared, batch.records, batch.names, batch.originals, results, strict=True
        ):
            if "classes" in result:
                record["classes"] = result["classes"]
            else:
                record["detections"] = [
                    {
                        "box": pixels.to_original(found["box"], prepared),
                        "label": found["label"],
                        "score": round(float(found["score"]), 6),
                    }
                    | ({"class": found["class"]} if "class" in found else {})
                    for found in result.get("detections", [])
                ]
            if name is not None and original is not None:
                record["annotated"] = self.drawn_uri + name
                drawn.append((name, original, record))
        await asyncio.gather(*(self.put_drawn(name, image, rec) for name, image, rec in drawn))

    async def put_drawn(self, name: str, image: Image.Image, record: dict[str, Any]) -> None:
        body = await asyncio.to_thread(
            lambda: pixels.encode(pixels.draw(image, record.get("detections", [])), self.media.draw)
        )
        await self.s3.put_object(
            Bucket=self.plan.bucket,
            Key=media.staged_drawn_prefix(self.plan.job_id) + name,
            Body=body,
            ContentType="image/png" if self.media.draw == "png" else "image/jpeg",
        )

    async def video_records(self, index: int, item: MediaItem) -> list[dict[str, Any]]:
        uri, line = self.where(item)
        with tempfile.TemporaryDirectory(prefix="byom-video-") as scratch:
            path = Path(scratch) / "video"
            try:
                await self.download(item, uri, line, path)
                return await self.detect_frames(index, item, uri, line, path)
            except InputError as exc:
                self.reject(index, exc)
                return [self.error_record(index, item)]

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

    async def detect_frames(
        self, index: int, item: MediaItem, uri: str, line: int | None, path: Path
    ) -> list[dict[str, Any]]:
        spec = await self.model_spec()
        sampled: Iterator[video.Frame] = video.frames(
            path, uri, rate=self.media.frame_rate, max_frames=self.settings.max_video_frames,
            max_pixels=self.settings.max_image_pixels, line=line,
        )  # fmt: skip
        records: list[dict[str, Any]] = []
        drawn_path = path.with_suffix(".annotated.mp4")
        drawing = self.media.draw != "none"
        annotated = video.AnnotatedVideo(drawn_path, self.media.frame_rate)

        def next_round(batch: _Batch) -> list[dict[str, Any]]:
            taken: list[dict[str, Any]] = []
            for frame in sampled:
                record = self.identity(item) | {"frame": frame.index, "time": frame.time}
                record |= {"width": frame.image.width, "height": frame.image.height}
                taken.append(record)
                prepared = pixels.prepare(frame.image, spec)
                self.add(batch, prepared, frame.image, record, index, item, frame.index)
                if len(taken) >= self.frames_per_round(frame.image):
                    break
            return taken

        def draw_round(originals: list[Image.Image | None], taken: list[dict[str, Any]]) -> None:
            for image, record in zip(originals, taken, strict=True):
                if image is not None:
                    annotated.add(pixels.draw(image, record.get("detections", [])))

        try:
            while True:
                batch = _Batch()
                taken = await asyncio.to_thread(next_round, batch)
                if not taken:
                    break
                await self.score(batch)
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
                record["annotated"] = self.drawn_uri + name
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
