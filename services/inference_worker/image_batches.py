"""A media chunk's resized images sent to the endpoint in batches, and its answers
written into their records (and drawn images staged).

Requests are uint8 pixels of the model's input size as ``application/x-npy``, several
images each (at most BYOM_REQUEST_BYTES), all of a batch's requests in flight at once;
the model server batches them across calls. What the model needs (its input size, task
and labels) is asked once per chunk through the endpoint itself (:func:`describe`).
Boxes are turned back into the original image's pixels.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from services.inference_worker import pixels
from services.inference_worker.endpoint import Endpoint
from shared import media
from shared.errors import ModelError, PredictionCountError
from shared.formats import JSON_TYPE, NPY_TYPE
from shared.schemas import ChunkPlan, MediaItem
from shared.settings import Settings

if TYPE_CHECKING:
    from PIL import Image
    from types_aiobotocore_s3 import S3Client

NPY, JSON = NPY_TYPE, JSON_TYPE
DESCRIBE = "application/vnd.byom.describe+json"


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
class ImageBatch:
    """Prepared images waiting to be sent, with where each one's record goes."""

    prepared: list[pixels.Prepared] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # filled in when scored
    names: list[str | None] = field(default_factory=list)  # the drawn image's, if drawn
    originals: list[Image.Image | None] = field(default_factory=list)


class BatchScorer:
    """Scores a chunk's batches of prepared images on the endpoint, one model description
    for the whole chunk."""

    def __init__(
        self,
        s3: S3Client,
        endpoint: Endpoint,
        plan: ChunkPlan,
        *,
        output_key: str,
        settings: Settings,
    ) -> None:
        assert plan.media is not None
        self.s3, self.endpoint, self.plan = s3, endpoint, plan
        self.media = plan.media
        self.settings = settings
        self.drawn_uri = f"s3://{plan.bucket}/{media.drawn_prefix(output_key)}"
        self.spec: pixels.VisionSpec | None = None
        self.describing = asyncio.Lock()

    async def model_spec(self) -> pixels.VisionSpec:
        async with self.describing:  # one request, however many images wait for it
            if self.spec is None:
                self.spec = await describe(self.endpoint)
        return self.spec

    def add(
        self,
        batch: ImageBatch,
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

    async def score(self, batch: ImageBatch) -> None:
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
