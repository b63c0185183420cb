"""Requests to a vision model: uint8 pixels in, JSON detections (or classes) out.

- `Content-Type: application/x-npy`, a `(n, height, width, 3)` uint8 array of the
  model's input size (the workers decode and resize; this server does not
  decode images): the answer is `{"predictions": [{"detections": [{"box": [x1,
  y1, x2, y2], "label", "class", "score"}, ...]}, ...]}` with boxes in the input's
  pixels, or `{"classes": [...]}` per image for a classifier.
- `Content-Type: application/vnd.byom.describe+json` (any body): what the model
  needs, `{"task", "size", "resize", "pad_value", "labels", "batch_size"}`, so a
  worker prepares pixels from the package it is actually served by.

Through SageMaker's InvokeEndpoint like any other request, so it works the
same on AWS, with TargetModel too.
"""

from __future__ import annotations

import io
import json

import numpy as np

from model.codecs import JSON, NPY, NotAcceptable, UnsupportedFormat, accepted
from model.flavors.base import BadRequest
from model.flavors.detector import VisionModel
from model.server.batching import Batchers

DESCRIBE = "application/vnd.byom.describe+json"


def _answers_json(accept: str | None) -> bool:
    if not accept:
        return True
    return any(wanted in (JSON, "*/*", "application/*", "") for wanted in accepted(accept))


async def invoke(
    batchers: Batchers, model: VisionModel, body: bytes, content_type: str, accept: str | None
) -> tuple[bytes, str]:
    if not _answers_json(accept):
        raise NotAcceptable(f"an image model answers {JSON}; cannot answer {accept!r}")
    if content_type == DESCRIBE:
        return json.dumps(model.describe()).encode(), JSON
    if content_type != NPY:
        raise UnsupportedFormat(
            f"an image model reads {NPY} (uint8 pixels, n x {model.spec.height} x "
            f"{model.spec.width} x 3) or {DESCRIBE}; got {content_type!r}"
        )
    try:
        pixels = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadRequest(f"the body is not a .npy array: {exc}") from exc
    pixels = model.check_pixels(pixels)
    batcher = batchers.of(model, model.spec.batch_size)
    results, batched = await batcher.submit(model.run, pixels)
    return json.dumps({"predictions": results, "batch_images": batched}).encode(), JSON
