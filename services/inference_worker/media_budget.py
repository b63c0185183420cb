"""How many images and video frames a worker child holds at once, from its memory.

A decoded image is its pixels three times over (RGB) and more while Pillow decodes
it; an original kept for drawing stays until its round is drawn. Measured: eight
concurrent decodes of 40-megapixel JPEGs peak at about 2.2 GB, and with drawing
on, 32 originals (two rounds of 16) hold about 3.8 GB: past the worker's 2 GiB
default. So the counts below are sized to the worst image the settings allow
(``BYOM_MAX_IMAGE_PIXELS``) and the child's memory (``BYOM_WORKER_MEMORY_MIB``,
Batch's MEMORY), shared by the chunks it scores at once. S3 reads stay
concurrent; only the decoded pixels are counted.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
# The interpreter, numpy, pyarrow, Pillow, PyAV and the clients, before any image.
BASELINE_BYTES = 450 * MIB
# Peak bytes per pixel while one image is decoded and resized: the compressed
# bytes, Pillow's decode buffers and the RGB image (2.2 GB / 8 / 40 MP, rounded up).
DECODE_BYTES_PER_PIXEL = 7
# An original held for drawing (RGB) and the drawn copy made of it.
HELD_BYTES_PER_PIXEL = 6
MAX_DECODES = 8
MAX_IMAGES_PER_ROUND = 16
MAX_FRAMES_PER_ROUND = 64
ROUNDS_IN_FLIGHT = 2  # one round decoded while the other is scored


@dataclass(frozen=True)
class MediaBudget:
    decodes: int  # images decoded and resized at once
    images_per_round: int  # images scored (and drawn) together
    frames_per_round: int  # video frames decoded, then scored, at a time

    def peak_bytes(self, max_pixels: int, *, drawing: bool) -> int:
        """The most one chunk's images hold at once under this budget (worst images)."""
        decoding = self.decodes * max_pixels * DECODE_BYTES_PER_PIXEL
        if not drawing:
            return decoding
        held = max_pixels * HELD_BYTES_PER_PIXEL
        images = decoding + ROUNDS_IN_FLIGHT * self.images_per_round * held
        frames = self.frames_per_round * held + max_pixels * DECODE_BYTES_PER_PIXEL
        return max(images, frames)


def _clamp(value: int, most: int) -> int:
    return max(1, min(most, value))


def media_budget(
    *, memory_mib: int, max_pixels: int, drawing: bool, chunks_in_flight: int
) -> MediaBudget:
    """The counts that keep a child's images within its memory (at least one of each:
    a single image larger than the budget is still scored, one at a time)."""
    per_chunk = max(0, memory_mib * MIB - BASELINE_BYTES) // max(1, chunks_in_flight)
    decode = max(1, max_pixels * DECODE_BYTES_PER_PIXEL)
    if not drawing:
        # Only the small resized copies outlive a decode.
        decodes = _clamp(per_chunk // decode, MAX_DECODES)
        return MediaBudget(decodes, MAX_IMAGES_PER_ROUND, MAX_FRAMES_PER_ROUND)
    held = max(1, max_pixels * HELD_BYTES_PER_PIXEL)
    # Room for two rounds of one original each first, then as many decodes as fit.
    decodes = _clamp(max(0, per_chunk - ROUNDS_IN_FLIGHT * held) // decode, MAX_DECODES)
    left = max(0, per_chunk - decodes * decode)
    images = _clamp(left // (ROUNDS_IN_FLIGHT * held), MAX_IMAGES_PER_ROUND)
    frames = _clamp(max(0, per_chunk - decode) // held, MAX_FRAMES_PER_ROUND)
    return MediaBudget(decodes, images, frames)
