"""`make bench-images`: images per second through the whole pipeline against the bare model.

For a ResNet-50-shaped classifier and a detector (bench/vision_models.py, built
here, random weights), on the same device in the same run:

- **bare model**: one onnxruntime session on the device, fed pre-made float32
  batches of the package's batch size; images scored / seconds.
- **pipeline**: the local stack serving the same package, a manifest of JPEG
  images uploaded to input/; images / (done event - manifest uploaded). The
  workers decode and resize, the model server batches across requests.

It measures GPUs: without onnxruntime's CUDAExecutionProvider it prints why it
skipped and exits 0. ``--device cpu`` runs it anyway (a check that it works; CPU
figures say little about the GPU target of 0.8x).

    python -m bench.images [--images 512] [--device cpu]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from bench.report import machine
from bench.vision_models import (
    bright_box_detector,
    classifier_manifest,
    detector_manifest,
    resnet50,
    write_package,
)

TIMEOUT = 1800.0


@dataclass(frozen=True)
class Case:
    name: str
    size: int
    build: Callable[[], onnx.ModelProto]
    manifest: str


CASES = (
    Case("ResNet-50 classifier, 224x224", 224, lambda: resnet50(224), classifier_manifest(224)),
    Case(
        "bright-box detector, 640x640",
        640,
        lambda: bright_box_detector(640),
        detector_manifest(640),
    ),
)


def gpu_name() -> str:
    try:
        found = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "GPU"
    return found.stdout.strip().splitlines()[0]


def bare_rate(package: Path, size: int, device: str, images: int) -> float:
    """Images a second of the model alone: float32 batches already on the host."""
    import onnxruntime

    from model.manifest import read_manifest

    # The package's batch size, read without loading a second copy of the model.
    manifest = read_manifest(package)
    assert manifest is not None and manifest.image is not None, package
    batch_size = manifest.image.batch_size
    providers = ["CUDAExecutionProvider"] if device == "gpu" else []
    session = onnxruntime.InferenceSession(
        str(package / "model.onnx"), providers=[*providers, "CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    batch = rng.random((batch_size, 3, size, size), dtype=np.float32)
    name = session.get_inputs()[0].name
    session.run(None, {name: batch})  # warm up (CUDA kernels, allocations)
    rounds = max(1, images // batch_size)
    started = time.perf_counter()
    for _ in range(rounds):
        session.run(None, {name: batch})
    return rounds * batch_size / (time.perf_counter() - started)


def jpeg(rng: np.random.Generator, width: int, height: int) -> bytes:
    from PIL import Image

    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    pixels[y : y + height // 3, x : x + width // 3] = (240, 200, 200)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def pipeline_rate(package: Path, images: int, log_dir: Path) -> float:
    """Images a second through the local stack: manifest uploaded -> done event."""
    from infra.local.stack import LocalStack
    from infra.local.stack_config import StackConfig
    from tests.integration.helpers import collect_done_events

    config = StackConfig(model_dir=package, log_dir=log_dir)
    with LocalStack(config) as stack:
        s3, sqs, bucket = stack.client("s3"), stack.client("sqs"), config.bucket
        done = stack.subscribe_done_events("bench-images-done")
        rng = np.random.default_rng(1)
        bodies = [jpeg(rng, 640, 480) for _ in range(min(images, 64))]
        keys = [f"bench/images/{i:06d}.jpg" for i in range(images)]
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(Bucket=bucket, Key=keys[i], Body=bodies[i % 64]),
                    range(images),
                )
            )
        for run in ("warm-up", "measured"):
            key = f"input/bench-{run}.manifest.jsonl"
            body = "\n".join(json.dumps(k) for k in (keys[:64] if run == "warm-up" else keys))
            started = time.monotonic()
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
            uri = f"s3://{bucket}/{key}"
            detail = collect_done_events(sqs, done, {uri}, timeout=TIMEOUT)[uri]
            seconds = time.monotonic() - started
            if detail["status"] != "SUCCEEDED":
                raise RuntimeError(f"the benchmark job failed: {detail['error']}")
        return images / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--device", choices=("gpu", "cpu"), default="gpu")
    args = parser.parse_args(argv)
    import onnxruntime

    if args.device == "gpu" and "CUDAExecutionProvider" not in (
        onnxruntime.get_available_providers()
    ):
        print(
            "bench-images skipped: no GPU (onnxruntime offers "
            f"{', '.join(onnxruntime.get_available_providers())}, no CUDAExecutionProvider). "
            "Run it on a machine with an NVIDIA GPU, with onnxruntime-gpu in the venv in "
            "place of onnxruntime (.venv/bin/pip uninstall -y onnxruntime && .venv/bin/pip "
            "install onnxruntime-gpu==1.26.0, the endpoint image's), or pass --device cpu."
        )
        return 0
    device = f"{gpu_name()}, host {machine()}" if args.device == "gpu" else machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="byom-bench-images-") as scratch:
        for number, case in enumerate(CASES):
            package = write_package(Path(scratch) / f"model-{number}", case.build(), case.manifest)
            bare = bare_rate(package, case.size, args.device, args.images)
            through = pipeline_rate(package, args.images, Path(scratch) / f"logs-{number}")
            rows.append((case.name, bare, through))
            print(f"{case.name}: bare {bare:,.0f} images/s, pipeline {through:,.0f} images/s")
    print(f"\nMeasured on {device}, {args.images} images of 640x480 JPEG:\n")
    print("| model | bare model, images/s | pipeline, images/s | pipeline / bare |")
    print("|---|---:|---:|---:|")
    for name, bare, through in rows:
        print(f"| {name} | {bare:,.0f} | {through:,.0f} | x{through / bare:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
