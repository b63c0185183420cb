"""A worker's image chunk, run alone: prints the process's peak RSS in bytes.

Run by ``test_media_budget.py`` in a child process, so that the peak it prints is
the image work's alone. S3 is a fake over a folder of JPEGs; the endpoint a fake
detector that finds nothing. Drawing is on, so originals are held as in a job.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from services.inference_worker.image_batches import DESCRIBE
from services.inference_worker.images import MediaChunk
from shared.schemas import Chunk, ChunkPlan, MediaItem, MediaPlan, MediaSourcePlan
from shared.settings import get_settings


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data


class FolderS3:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        return {"Body": Body((self.folder / Key).read_bytes())}

    async def put_object(self, **_: Any) -> dict[str, Any]:
        return {}


class NothingFound:
    async def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        if content_type == DESCRIBE:
            return json.dumps({"task": "detect", "size": [64, 64], "labels": ["x"]}).encode()
        images = len(np.load(io.BytesIO(body)))
        return json.dumps({"predictions": [{"detections": []}] * images}).encode()


def main(folder: Path) -> None:
    keys = sorted(path.name for path in folder.iterdir())
    items = tuple(
        MediaItem(key=key, kind="image", size=(folder / key).stat().st_size, etag="e", line=n)
        for n, key in enumerate(keys, 1)
    )
    plan = ChunkPlan(
        job_id="j", bucket="b", key="images.manifest.csv", etag="e", size=1,
        chunks=(Chunk(index=0, start=0, end=len(items)),),
        source=MediaSourcePlan(media=MediaPlan(items=items, draw="jpeg", source="manifest")),
    )  # fmt: skip
    chunk = MediaChunk(
        FolderS3(folder), NothingFound(), plan, plan.chunks[0],  # type: ignore[arg-type]
        uri="s3://b/images.manifest.csv", output_key="output/x.jsonl", settings=get_settings(),
    )  # fmt: skip
    result = asyncio.run(chunk.run())
    assert result.rows == len(items), result
    print(peak_rss_bytes())


def peak_rss_bytes() -> int:
    """This process's own peak RSS: VmHWM belongs to the address space exec made.
    (``getrusage``'s ru_maxrss would not do: Linux carries the parent's high-water
    mark across fork and exec, so a child of a large pytest reports pytest's.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
