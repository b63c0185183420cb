"""Decode, resize and draw images for a vision model (Pillow), and map boxes back.

The model sees its own input size; the user wants boxes on the original image.
`prepare` resizes as the package asks (a letterbox keeps the aspect ratio and
pads, a stretch does not) and remembers how, so `to_original` can undo it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from shared.errors import InputError

# A few colours that stay readable on photos; a class keeps its colour.
PALETTE = ((255, 56, 56), (56, 168, 255), (72, 249, 10), (255, 178, 29), (207, 56, 255))


@dataclass(frozen=True)
class VisionSpec:
    """What the endpoint's model says it needs (model/server/vision.py: describe)."""

    task: str
    height: int
    width: int
    resize: str
    pad_value: int
    labels: tuple[str, ...]

    @classmethod
    def of(cls, described: dict[str, Any]) -> VisionSpec:
        height, width = (int(v) for v in described["size"])
        return cls(
            task=str(described["task"]),
            height=height,
            width=width,
            resize=str(described.get("resize", "letterbox")),
            pad_value=int(described.get("pad_value", 114)),
            labels=tuple(str(label) for label in described.get("labels", ())),
        )


@dataclass(frozen=True)
class Prepared:
    pixels: np.ndarray  # (height, width, 3) uint8, the model's input size
    width: int  # the original image's
    height: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


def decode(data: bytes, uri: str, *, max_pixels: int, line: int | None = None) -> Image.Image:
    """The image as RGB; `InputError` for anything Pillow cannot decode or that is too big.

    The size is read from the header and checked before any pixel is decoded, so a
    decompression bomb (a small file of billions of pixels) costs nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(
                    uri,
                    f"the image is {width}x{height} pixels, over the {max_pixels}-pixel limit "
                    "(BYOM_MAX_IMAGE_PIXELS)",
                    line=line,
                )
            image.load()
            # Boxes are given on the image as it is shown: a phone photo's EXIF
            # orientation is applied first (width and height follow it).
            return ImageOps.exif_transpose(image).convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(uri, f"cannot be decoded as an image: {exc}", line=line) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(uri, f"refused as a decompression bomb: {exc}", line=line) from None


def prepare(image: Image.Image, spec: VisionSpec) -> Prepared:
    """The model's input pixels for `image`, and how they were made."""
    width, height = image.size
    if spec.resize == "stretch":
        resized = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        return Prepared(
            np.asarray(resized, dtype=np.uint8),
            width, height, spec.width / width, spec.height / height, 0.0, 0.0,
        )  # fmt: skip
    ratio = min(spec.width / width, spec.height / height)
    new_width = max(1, round(width * ratio))
    new_height = max(1, round(height * ratio))
    canvas = Image.new("RGB", (spec.width, spec.height), (spec.pad_value,) * 3)
    pad_x, pad_y = (spec.width - new_width) // 2, (spec.height - new_height) // 2
    canvas.paste(image.resize((new_width, new_height), Image.Resampling.BILINEAR), (pad_x, pad_y))
    return Prepared(
        np.asarray(canvas, dtype=np.uint8),
        width, height, new_width / width, new_height / height, float(pad_x), float(pad_y),
    )  # fmt: skip


def to_original(box: list[float], prepared: Prepared) -> list[float]:
    """A box in the model's input pixels as a box in the original image's pixels."""
    x1, y1, x2, y2 = box
    p = prepared

    def x(value: float) -> float:
        return round(min(max((value - p.pad_x) / p.scale_x, 0.0), float(p.width)), 3)

    def y(value: float) -> float:
        return round(min(max((value - p.pad_y) / p.scale_y, 0.0), float(p.height)), 3)

    return [x(x1), y(y1), x(x2), y(y2)]


def draw(image: Image.Image, detections: list[dict[str, Any]]) -> Image.Image:
    """A copy of `image` with each box and its label and score drawn on it."""
    drawn = image.copy()
    pen = ImageDraw.Draw(drawn)
    line = max(2, min(image.size) // 150)
    for found in detections:
        colour = PALETTE[int(found.get("class", 0)) % len(PALETTE)]
        x1, y1, x2, y2 = found["box"]
        pen.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f"{found['label']} {found['score']:.2f}"
        left, top, right, bottom = pen.textbbox((0, 0), text)
        tall = bottom - top + 2
        above = max(0.0, y1 - tall)  # above the box, or inside it at the image's top edge
        pen.rectangle((x1, above, x1 + right - left + 4, above + tall), fill=colour)
        pen.text((x1 + 2, above), text, fill=(255, 255, 255))
    return drawn


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
