"""The image pieces on their own: the [image] table, box decoding and NMS, planning, naming."""

from __future__ import annotations

import numpy as np
import pytest

from model.flavors.detector import decode_yolo, decode_yolov8, detections, nms, top_classes
from model.image_spec import ImageSpec
from model.manifest import ManifestError, parse_manifest
from services.inference_worker import pixels
from services.ingest.images import media_chunks
from shared import formats, media, naming
from shared.schemas import MediaItem

BASE = {"task": "detection", "size": [64, 64], "labels": ["cat", "dog"]}


def spec(**changes: object) -> ImageSpec:
    return ImageSpec.model_validate(BASE | changes)


def test_image_table_is_read_with_defaults():
    manifest = parse_manifest({"flavor": "onnx", "image": BASE})
    assert manifest.image is not None
    assert manifest.image.resize == "letterbox" and manifest.image.nms == "server"
    assert (manifest.image.height, manifest.image.width) == (64, 64)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (BASE | {"sise": [1, 2]}, "image.sise: unknown key; allowed here: task, size, layout"),
        (BASE | {"layout": "CHW"}, "image.layout: Input should be 'NCHW' or 'NHWC'"),
        (BASE | {"labels": ["cat", "cat"]}, "labels: names appear more than once"),
        (BASE | {"score_threshold": 1.5}, "image.score_threshold"),
        (BASE | {"size": [64]}, "image.size"),
        ({"size": [64, 64], "labels": ["a"]}, "image.task: Field required"),
        (BASE | {"task": "classification", "output": "yolo"}, "'yolo' is a detector head"),
    ],
)
def test_bad_image_tables_are_refused_by_key(table, message):
    with pytest.raises(ManifestError) as caught:
        parse_manifest({"image": table})
    assert message in str(caught.value)


def test_server_nms_keeps_the_best_box_per_class_and_drops_low_scores():
    boxes = np.array(
        [[10, 10, 30, 30], [11, 11, 31, 31], [10, 10, 30, 30], [40, 40, 60, 60], [0, 0, 5, 5]],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1], dtype=np.float32)
    labels = np.array([0, 0, 1, 0, 0])
    found = detections(boxes, scores, labels, spec(score_threshold=0.5))["detections"]
    # The overlapping twin of the first box goes; the same box of another class stays.
    assert [(d["label"], d["score"]) for d in found] == [
        ("cat", pytest.approx(0.9)),
        ("dog", pytest.approx(0.7)),
        ("cat", pytest.approx(0.6)),
    ]
    in_model = detections(boxes, scores, labels, spec(score_threshold=0.5, nms="model"))
    assert len(in_model["detections"]) == 4


def test_nms_on_disjoint_and_identical_boxes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.4], dtype=np.float32), 0.5).tolist() == [1, 2]


def test_a_class_the_package_does_not_name_is_an_error():
    with pytest.raises(ValueError, match="class 5; the package names 2 labels"):
        box = np.array([[0, 0, 4, 4]], np.float32)
        detections(box, np.ones(1), np.array([5]), spec())


def test_yolo_head_decodes_centre_boxes_and_class_scores():
    # cx cy w h objectness, then two class scores
    head = np.array([[[20, 20, 10, 10, 0.5, 0.2, 0.8], [5, 5, 2, 2, 1.0, 0.9, 0.1]]], np.float32)
    boxes, scores, labels = decode_yolo(head)
    np.testing.assert_allclose(boxes[0], [[15, 15, 25, 25], [4, 4, 6, 6]])
    np.testing.assert_allclose(scores[0], [0.4, 0.9])
    assert labels[0].tolist() == [1, 0]


def test_classifier_logits_go_through_softmax():
    result = top_classes(np.array([2.0, -1.0]), spec(task="classification", top_k=1))
    (best,) = result["classes"]
    assert best["label"] == "cat" and best["score"] == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_letterbox_boxes_map_back_to_the_original_image():
    from PIL import Image

    vision = pixels.VisionSpec("detection", 64, 64, "letterbox", 0, ("a",))
    prepared = pixels.prepare(Image.new("RGB", (128, 64)), vision)  # scaled by 1/2, padded 16 rows
    assert (prepared.scale_x, prepared.pad_x, prepared.pad_y) == (0.5, 0.0, 16.0)
    assert pixels.to_original([10, 20, 30, 40], prepared) == [20.0, 8.0, 60.0, 48.0]
    assert pixels.to_original([-5, 0, 70, 64], prepared) == [0.0, 0.0, 128.0, 64.0]  # clipped


def item(kind: str, size: int) -> MediaItem:
    return MediaItem(key=f"k.{'mp4' if kind == 'video' else 'png'}", kind=kind, size=size, line=1)


def test_chunks_by_count_and_bytes_with_each_video_alone():
    items = [item("image", 10)] * 5 + [item("video", 1000)] + [item("image", 60), item("image", 60)]
    chunks = media_chunks(items, max_count=3, max_bytes=100)
    assert [(c.start, c.end) for c in chunks] == [(0, 3), (3, 5), (5, 6), (6, 7), (7, 8)]
    assert [c.index for c in chunks] == list(range(5))


def test_media_uploads_are_recognised_and_answer_json_lines():
    assert formats.media_source("input/a.manifest.jsonl") == "manifest"
    assert formats.media_source("input/A.JPG") == "image"
    assert formats.media_source("input/clip.mkv") == "video"
    assert formats.media_source("input/rows.csv") is None
    from datetime import UTC, datetime

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (
        naming.output_key("input/cats.manifest.csv", when) == "output/20260102T030405Z-cats.jsonl"
    )
    assert naming.output_key("input/clip.mp4", when) == "output/20260102T030405Z-clip.jsonl"
    assert naming.output_key("input/rows.csv", when) == "output/20260102T030405Z-rows.csv"
    assert naming.tagged("output/x-cats.jsonl", "ab") == "output/x-cats-ab.jsonl"
    assert naming.errors_key("output/x-cats.jsonl") == "errors/x-cats.csv"
    assert media.drawn_prefix("output/x-cats.jsonl") == "output/x-cats/"
    assert media.drawn_name(3, "images/a b.png", "jpg") == "000003-a_b.png.jpg"


def test_lambda_handlers_never_import_pillow_or_pyav():
    """Ingest plans image jobs by keys and sizes: decoding stays in the workers' image."""
    import subprocess
    import sys

    script = (
        "import sys; import services.ingest.handler, services.scheduler.handler, "
        "services.status.handler; print(sorted({'PIL', 'av', 'numpy'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


def test_endpoint_instance_type_allows_gpu_instances():
    import re

    from tests.unit.test_template import load_template

    parameter = load_template()["Parameters"]["EndpointInstanceType"]
    pattern = re.compile(parameter["AllowedPattern"])
    for allowed in ("ml.m5.large", "ml.g5.xlarge", "ml.g5.12xlarge", "ml.t2.medium"):
        assert pattern.fullmatch(allowed), allowed
    for refused in ("g5.xlarge", "ml.g5", "ml.g5.xlarge; rm"):
        assert not pattern.fullmatch(refused), refused


def test_exif_orientation_is_applied_before_detection():
    import io

    from PIL import Image

    image = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 20 wide and 40 tall
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    decoded = pixels.decode(buffer.getvalue(), "s3://b/k.jpg", max_pixels=10_000)
    assert decoded.size == (20, 40)
    with pytest.raises(Exception, match=r"s3://b/k.jpg: the image is 40x20 pixels, over the 100-"):
        pixels.decode(buffer.getvalue(), "s3://b/k.jpg", max_pixels=100)


def test_yolov8_head_has_boxes_in_columns_and_no_objectness():
    # (1 image, 4 + 2 classes, 2 boxes): box 0 at (20, 20) 10x10 of class 1, box 1 of class 0
    head = np.array([[[20, 5], [20, 5], [10, 2], [10, 2], [0.1, 0.7], [0.6, 0.2]]], np.float32)
    boxes, scores, labels = decode_yolov8(head)
    np.testing.assert_allclose(boxes[0], [[15, 15, 25, 25], [4, 4, 6, 6]])
    np.testing.assert_allclose(scores[0], [0.6, 0.7])
    assert labels[0].tolist() == [1, 0]


def test_batcher_shares_model_calls_and_hands_each_caller_its_own_results():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from model.server.batching import Batcher

    calls: list[int] = []

    def run(images: np.ndarray) -> list[int]:
        calls.append(len(images))
        return [int(value) * 10 for value in images[:, 0]]

    def broken(images: np.ndarray) -> list[int]:
        raise RuntimeError("the device is gone")

    async def scenario() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(pool, max_images=4, max_wait=0.05)
            answers = await asyncio.gather(
                *(batcher.submit(run, np.array([[i]])) for i in range(10))
            )
            assert [results for results, _ in answers] == [[i * 10] for i in range(10)]
            assert sorted(calls) == [2, 4, 4] and batcher.batches == 3
            assert {shared for _, shared in answers} == {2, 4}
            # A failed model call fails every request that shared it, and only those.
            with pytest.raises(RuntimeError, match="the device is gone"):
                await batcher.submit(broken, np.array([[1]]))
            assert (await batcher.submit(run, np.array([[7], [8]])))[0] == [70, 80]
            batcher.close()

    asyncio.run(scenario())
