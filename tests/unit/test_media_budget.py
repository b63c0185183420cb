"""Image and video work is sized to the child's memory and the largest image allowed.

With the defaults (a 2 GiB child, 40-megapixel images, two chunks at once) the
worker used to decode eight images at once (about 2.2 GB) and, drawing, hold 32
originals (about 3.8 GB). The budget keeps a chunk's worst case within its share.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from services.inference_worker.media_budget import (
    BASELINE_BYTES,
    DECODE_BYTES_PER_PIXEL,
    HELD_BYTES_PER_PIXEL,
    MIB,
    ROUNDS_IN_FLIGHT,
    media_budget,
)
from shared.settings import Settings


def test_the_defaults_fit_a_default_child() -> None:
    settings = Settings()
    for drawing in (False, True):
        budget = media_budget(
            memory_mib=settings.worker_memory_mib,
            max_pixels=settings.max_image_pixels,
            drawing=drawing,
            chunks_in_flight=settings.worker_chunks_in_flight,
        )
        peak = budget.peak_bytes(settings.max_image_pixels, drawing=drawing)
        total = BASELINE_BYTES + settings.worker_chunks_in_flight * peak
        assert total <= settings.worker_memory_mib * MIB, (drawing, budget)
    # Small images keep the old concurrency.
    small = media_budget(memory_mib=2048, max_pixels=2_000_000, drawing=True, chunks_in_flight=2)
    assert (small.decodes, small.images_per_round, small.frames_per_round) == (8, 16, 64)


@given(
    memory_mib=st.integers(512, 64 * 1024),
    max_pixels=st.integers(1, 200_000_000),
    drawing=st.booleans(),
    chunks=st.integers(1, 16),
)
def test_a_chunk_holds_no_more_than_its_share_whenever_one_image_fits(
    memory_mib: int, max_pixels: int, drawing: bool, chunks: int
) -> None:
    budget = media_budget(
        memory_mib=memory_mib, max_pixels=max_pixels, drawing=drawing, chunks_in_flight=chunks
    )
    assert budget.decodes >= 1 and budget.images_per_round >= 1 and budget.frames_per_round >= 1
    share = max(0, memory_mib * MIB - BASELINE_BYTES) // chunks
    smallest = max_pixels * DECODE_BYTES_PER_PIXEL
    if drawing:
        smallest += ROUNDS_IN_FLIGHT * max_pixels * HELD_BYTES_PER_PIXEL
    if smallest <= share:  # else one image at a time is all that can be done
        assert budget.peak_bytes(max_pixels, drawing=drawing) <= share


def test_a_chunk_of_large_images_with_drawing_stays_within_the_childs_memory(
    tmp_path: Path,
) -> None:
    """Twelve 9-megapixel JPEGs, drawn, in a child of 768 MiB: eight decodes and two
    rounds of originals at once would hold about 1 GB; the budget holds a few."""
    from PIL import Image

    side = 3000
    pixels = np.random.default_rng(7).integers(0, 255, (side // 10, side // 10, 3), np.uint8)
    picture = Image.fromarray(pixels).resize((side, side))
    for n in range(12):
        picture.save(tmp_path / f"{n:02d}.jpg", quality=80)
    memory_mib = 768
    # Only this test's settings: a BYOM_ or AWS_ variable another test left in the
    # environment must not change the child's budget.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BYOM_", "AWS_", "OTEL_"))}
    env = clean | {
        "BYOM_WORKER_MEMORY_MIB": str(memory_mib),
        "BYOM_MAX_IMAGE_PIXELS": str(side * side),
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.unit.media_memory_child", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    peak = int(child.stdout.split()[-1])
    assert peak <= memory_mib * MIB, f"peak RSS {peak / MIB:.0f} MiB"
