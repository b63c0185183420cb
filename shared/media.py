"""Image and video jobs: which uploads are media, and the names their outputs take.

No Pillow, no PyAV: ingest and status run in Lambda and only plan
by keys and sizes; decoding happens in the workers.

- An image (`.jpg`, `.png`, ...) or a video (`.mp4`, `.mov`, `.mkv`) uploaded under
  `input/` is a job of its own.
- A manifest, `input/<name>.manifest.jsonl` or `.manifest.csv`, lists the images
  (and videos) of one job, in order (services/ingest/images.py).
- A zip archive, `input/<name>.zip`: its images and videos, in archive order.

The output is `output/<UTC ts>-<name>.jsonl`, one record per image or frame; drawn
images go under `output/<UTC ts>-<name>/`, beside it, and only once the job has
succeeded (they are staged under `staging/<job>/drawn/` until then).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shared import aws
from shared.formats import (
    ARCHIVE_SUFFIXES,
    IMAGE_SUFFIXES,
    MANIFEST_SUFFIXES,
    MEDIA_OUTPUT,
    OUTPUT_EXTENSION,
    VIDEO_SUFFIXES,
)
from shared.settings import get_settings

OUTPUT_SUFFIX = OUTPUT_EXTENSION[MEDIA_OUTPUT]  # image and video jobs answer JSON Lines
_COPIES_IN_FLIGHT = 32

__all__ = ["ARCHIVE_SUFFIXES", "IMAGE_SUFFIXES", "MANIFEST_SUFFIXES", "VIDEO_SUFFIXES"]


def output_name(name: str) -> str | None:
    """The output name for a flattened media upload name, None if it is not media."""
    lowered = name.lower()
    for suffix in (*MANIFEST_SUFFIXES, *ARCHIVE_SUFFIXES, *IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
        if lowered.endswith(suffix):
            return name[: -len(suffix)] + OUTPUT_SUFFIX
    return None


def drawn_prefix(output_key: str) -> str:
    """Where a job's drawn images go: a folder named as its output, beside it."""
    return output_key.removesuffix(OUTPUT_SUFFIX) + "/"


def staged_drawn_prefix(job_id: str) -> str:
    return f"{get_settings().staging_prefix}{job_id}/drawn/"


def drawn_name(item: int, key: str, suffix: str, frame: int | None = None) -> str:
    """`<item>-<file name>[-f<frame>].<suffix>`: in manifest order, unique per job."""
    base = key.rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)[:100] or "image"
    tail = f"-f{frame:06d}" if frame is not None else ""
    return f"{item:06d}-{safe}{tail}.{suffix}"


def _keys(bucket: str, prefix: str) -> list[str]:
    paginator = aws.s3().get_paginator("list_objects_v2")
    return [
        obj["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]


def publish_drawn(bucket: str, job_id: str, output_key: str) -> int:
    """Copy the job's staged drawn images beside its output (server-side); repeatable.

    Runs before the output itself is completed, so a finished output's drawn
    images are always there. Copies run 32 at a time: about 1,500 a second.
    """
    staged = staged_drawn_prefix(job_id)
    target = drawn_prefix(output_key)
    keys = _keys(bucket, staged)
    s3 = aws.s3()

    def copy(key: str) -> None:
        name = key[len(staged) :]
        s3.copy_object(Bucket=bucket, Key=target + name, CopySource={"Bucket": bucket, "Key": key})

    with ThreadPoolExecutor(_COPIES_IN_FLIGHT) as pool:
        list(pool.map(copy, keys))
    return len(keys)


def remove_drawn(bucket: str, output_key: str) -> None:
    """A FAILED job shows nothing: delete drawn images published beside its output name."""
    if not output_key.endswith(OUTPUT_SUFFIX):
        return
    keys = _keys(bucket, drawn_prefix(output_key))
    for start in range(0, len(keys), 1000):
        aws.s3().delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True},
        )
