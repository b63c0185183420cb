"""The model server serving a detector package: describe, pixels in, batched model calls."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bench.vision_models import (
    bright_box_detector,
    classifier_manifest,
    detector_manifest,
    resnet50,
    write_package,
)
from model.flavors.detector import VisionModel
from model.package import load_package

pytestmark = pytest.mark.integration

SIZE = 64


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def square(x: int, y: int, side: int) -> np.ndarray:
    pixels = np.full((SIZE, SIZE, 3), 20, dtype=np.uint8)
    pixels[y : y + side, x : x + side] = (120, 240, 120)
    return pixels


def test_detector_is_described_and_concurrent_requests_share_model_calls(serve, tmp_path):
    package = write_package(
        tmp_path / "detector", bright_box_detector(SIZE), detector_manifest(SIZE)
    )
    # A long wait, so that the concurrent requests below surely meet in one batch.
    server = serve(package, env={"BYOM_IMAGE_BATCH_WAIT_MS": "1000"})
    status, described = post(server.url, b"{}", "application/vnd.byom.describe+json")
    assert status == 200, described
    assert described == {
        "task": "detection", "size": [SIZE, SIZE], "resize": "letterbox", "pad_value": 0,
        "labels": ["red", "green", "blue"], "batch_size": 64,
    }  # fmt: skip

    images = [square(4 + 3 * i, 10 + i, 20) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda p: post(server.url, npy(p[np.newaxis]), "application/x-npy"), images)
        )
    model = load_package(package)
    assert isinstance(model, VisionModel)
    for (status, answer), pixels in zip(answers, images, strict=True):
        assert status == 200, answer
        # Each caller gets its own image's answer, the one the model gives it alone.
        assert answer["predictions"] == model.run(pixels[np.newaxis])
        (found,) = answer["predictions"][0]["detections"]  # the shifted twin is suppressed
        assert found["label"] == "green"
    assert max(answer["batch_images"] for _, answer in answers) > 1

    # Feature rows, floats and the wrong size are refused, saying what to send.
    status, answer = post(server.url, b"1,2,3\n", "text/csv")
    assert status == 415 and "uint8 pixels" in answer["error"]
    status, answer = post(server.url, npy(np.zeros((1, 32, 32, 3), np.uint8)), "application/x-npy")
    assert status == 400 and "(n, 64, 64, 3)" in answer["error"]
    status, answer = post(
        server.url, npy(np.zeros((1, 64, 64, 3), np.float32)), "application/x-npy"
    )
    assert status == 400 and "uint8" in answer["error"]


def test_classifier_answers_its_top_classes(serve, tmp_path):
    manifest = classifier_manifest(size=32, classes=10)
    package = write_package(tmp_path / "classifier", resnet50(size=32, classes=10), manifest)
    server = serve(package)
    pixels = np.random.default_rng(3).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    status, answer = post(server.url, npy(pixels), "application/x-npy")
    assert status == 200, answer
    model = load_package(package)
    assert isinstance(model, VisionModel)
    assert answer["predictions"] == model.run(pixels)
    for result in answer["predictions"]:
        scores = [entry["score"] for entry in result["classes"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        assert all(entry["label"] == f"class_{entry['class']}" for entry in result["classes"])
