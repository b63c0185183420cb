"""Image and video jobs through the real local stack, on CPU.

The endpoint serves a small detector whose graph the test builds
(bench/vision_models.py: it boxes the bright region of an image and names its
dominant colour), so the boxes depend on the content: each is checked against
where the test drew the bright rectangle and, to 1e-4, against the model's own
output on the same pre-processed tensor.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import onnxruntime
import pytest
from PIL import Image

from bench.vision_models import bright_box_detector, detector_manifest, write_package
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from services.inference_worker import pixels
from tests.integration.helpers import collect_done_events, keys_under

pytestmark = pytest.mark.integration

SIZE = 64  # the detector's input
SPEC = pixels.VisionSpec(
    task="detection", height=SIZE, width=SIZE, resize="letterbox", pad_value=0,
    labels=("red", "green", "blue"),
)  # fmt: skip
COLOURS = {"red": (255, 170, 170), "green": (170, 255, 170), "blue": (170, 170, 255)}
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("detector") / "package"
    return write_package(folder, bright_box_detector(SIZE), detector_manifest(SIZE))


@pytest.fixture(scope="module")
def stack(detector, tmp_path_factory):
    config = StackConfig(
        model_dir=detector,
        log_dir=tmp_path_factory.mktemp("images-stack-logs"),
        settings={"BYOM_IMAGE_CHUNK_COUNT": "2", "BYOM_MAX_IMAGE_PIXELS": str(MAX_PIXELS)},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def aws(stack):
    clients = {name: stack.client(name) for name in ("s3", "sqs")}
    clients["done"] = stack.subscribe_done_events("images-done-events")
    return clients


@pytest.fixture(scope="module")
def session(detector):
    return onnxruntime.InferenceSession(str(detector / "model.onnx"))


def picture(width: int, height: int, box: tuple[int, int, int, int], colour: str) -> Image.Image:
    image = Image.new("RGB", (width, height), (25, 25, 25))
    image.paste(COLOURS[colour], box)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def model_box(session, image: Image.Image) -> tuple[list[float], float]:
    """The model's own best box for `image`, mapped back to the image, and its score."""
    prepared = pixels.prepare(image, SPEC)
    tensor = (prepared.pixels.astype(np.float32) / 255.0).transpose(2, 0, 1)[np.newaxis]
    boxes, scores, _ = session.run(None, {"images": np.ascontiguousarray(tensor)})
    return pixels.to_original([float(v) for v in boxes[0, 0]], prepared), float(scores[0, 0])


def finish(stack, aws, uris: set[str], timeout: float = 180) -> dict[str, dict]:
    try:
        return collect_done_events(aws["sqs"], aws["done"], uris, timeout=timeout)
    except TimeoutError:
        print(stack.logs())
        raise


def read_jsonl(s3, bucket: str, uri: str) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=uri.removeprefix(f"s3://{bucket}/"))["Body"].read()
    return [json.loads(line) for line in body.decode().splitlines()]


def test_manifest_of_images_gives_records_in_order_with_drawn_images(stack, aws, session):
    s3, bucket = aws["s3"], stack.config.bucket
    # Different shapes, so the letterbox pads one way or the other.
    images = {
        "images/set/a.png": picture(64, 64, (10, 12, 30, 40), "red"),
        "images/set/b.png": picture(80, 48, (40, 5, 70, 30), "green"),
        "images/set/c.png": picture(48, 96, (4, 50, 40, 90), "blue"),
        "images/set/d.png": picture(64, 64, (0, 0, 20, 20), "green"),
        "images/set/e.png": picture(100, 60, (55, 20, 95, 55), "red"),
    }
    for key, image in images.items():
        s3.put_object(Bucket=bucket, Key=key, Body=png(image))
    order = ["images/set/c.png", "images/set/a.png", "images/set/e.png", "images/set/b.png"]
    manifest = "\n".join(
        [json.dumps(order[0]), json.dumps({"source-ref": f"s3://{bucket}/{order[1]}"})]
        + [json.dumps(key) for key in order[2:]]
        + [json.dumps("images/set/d.png")]
    )
    order.append("images/set/d.png")
    key = "input/set.manifest.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=manifest.encode(), Metadata={"byom-draw": "jpeg"})
    uri = f"s3://{bucket}/{key}"
    detail = finish(stack, aws, {uri})[uri]
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["chunks"] == 3 and detail["rows"] == 5
    assert detail["output_uri"].endswith("-set.jsonl")

    records = read_jsonl(s3, bucket, detail["output_uri"])
    assert [record["key"] for record in records] == order
    drawn_prefix = detail["output_uri"].removesuffix(".jsonl") + "/"
    for record in records:
        image = images[record["key"]]
        assert (record["width"], record["height"]) == image.size
        (found,) = record["detections"]  # the model's second, shifted box is suppressed
        colour = next(
            name for name, rgb in COLOURS.items() if image.getpixel(_inside(image)) == rgb
        )
        assert found["label"] == colour
        expected_box, expected_score = model_box(session, image)
        np.testing.assert_allclose(found["box"], expected_box, atol=1e-4)
        assert found["score"] == pytest.approx(expected_score, abs=1e-4)
        # ... and that box is where the bright rectangle is, within the resize's rounding.
        np.testing.assert_allclose(found["box"], _drawn_box(image), atol=2.5)
        assert record["annotated"].startswith(drawn_prefix)
        drawn_key = record["annotated"].removeprefix(f"s3://{bucket}/")
        body = s3.get_object(Bucket=bucket, Key=drawn_key)["Body"].read()
        with Image.open(io.BytesIO(body)) as drawn:
            assert drawn.format == "JPEG" and drawn.size == image.size
            drawn.load()
    assert len(keys_under(s3, bucket, drawn_prefix.removeprefix(f"s3://{bucket}/"))) == 5


def _inside(image: Image.Image) -> tuple[int, int]:
    """A pixel of the bright rectangle."""
    array = np.asarray(image).sum(axis=2)
    ys, xs = np.nonzero(array > 300)
    return int(xs[0]), int(ys[0])


def _drawn_box(image: Image.Image) -> list[float]:
    array = np.asarray(image).sum(axis=2)
    ys, xs = np.nonzero(array > 300)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def moving_square(path: Path, frames: int, fps: int) -> list[int]:
    """A video of a white square moving right two pixels a frame; its x per frame."""
    xs = []
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.bit_rate = 2_000_000
        for index in range(frames):
            x = 4 + 2 * index
            xs.append(x)
            frame = av.VideoFrame.from_image(picture(64, 64, (x, 20, x + 16, 36), "red"))
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return xs


def test_video_is_split_detected_and_reported_per_frame(stack, aws, session, tmp_path):
    s3, bucket = aws["s3"], stack.config.bucket
    path = tmp_path / "clip.mp4"
    xs = moving_square(path, frames=20, fps=10)
    key = "input/clip.mp4"
    asked = {"byom-frame-rate": "5", "byom-draw": "jpeg"}
    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata=asked)
    uri = f"s3://{bucket}/{key}"
    detail = finish(stack, aws, {uri})[uri]
    assert detail["status"] == "SUCCEEDED", detail
    records = read_jsonl(s3, bucket, detail["output_uri"])
    # 2 s at 10 frames a second, sampled at 5: every other frame.
    assert [record["frame"] for record in records] == list(range(0, 20, 2))
    assert [record["time"] for record in records] == pytest.approx([i / 5 for i in range(10)])
    with av.open(str(path)) as container:
        decoded = [frame.to_image() for frame in container.decode(video=0)]
    for record in records:
        assert record["key"] == key and (record["width"], record["height"]) == (64, 64)
        (found,) = record["detections"]
        frame = decoded[record["frame"]]
        expected_box, _ = model_box(session, frame)
        np.testing.assert_allclose(found["box"], expected_box, atol=1e-4)
        x = xs[record["frame"]]
        np.testing.assert_allclose(found["box"], [x, 20, x + 16, 36], atol=2.5)
        assert found["label"] == "red"
    # The annotated video: the sampled frames with their boxes drawn.
    (annotated,) = {record["annotated"] for record in records}
    assert annotated.startswith(detail["output_uri"].removesuffix(".jsonl") + "/")
    drawn = tmp_path / "annotated.mp4"
    body = s3.get_object(Bucket=bucket, Key=annotated.removeprefix(f"s3://{bucket}/"))["Body"]
    drawn.write_bytes(body.read())
    with av.open(str(drawn)) as container:
        assert len(list(container.decode(video=0))) == len(records)


def test_bad_images_are_skipped_or_fail_by_policy_and_named(stack, aws, tmp_path):
    s3, bucket = aws["s3"], stack.config.bucket
    good = picture(64, 64, (8, 8, 24, 24), "blue")
    s3.put_object(Bucket=bucket, Key="images/bad/good.png", Body=png(good))
    s3.put_object(Bucket=bucket, Key="images/bad/not-an-image.jpg", Body=b"just some text\n")
    # A few KiB of PNG that would decode to 4 million pixels: refused from its header.
    s3.put_object(
        Bucket=bucket, Key="images/bad/huge.png", Body=png(Image.new("RGB", (2000, 2000)))
    )
    manifest = "key\nimages/bad/good.png\nimages/bad/not-an-image.jpg\nimages/bad/huge.png\n"
    manifest += f"s3://{bucket}/images/bad/missing.png\nimages/bad/good.png\n"
    skip = {"byom-on-bad-rows": "skip"}
    s3.put_object(
        Bucket=bucket, Key="input/bad.manifest.csv", Body=manifest.encode(), Metadata=skip
    )
    s3.put_object(Bucket=bucket, Key="input/broken.jpg", Body=b"\xff\xd8 not really a jpeg")
    s3.put_object(Bucket=bucket, Key="input/huge.png", Body=png(Image.new("RGB", (1500, 1500))))
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # the header is written, and no frame ever
    s3.put_object(Bucket=bucket, Key="input/empty.mp4", Body=empty.read_bytes())
    s3.put_object(
        Bucket=bucket,
        Key="input/strict.manifest.csv",
        Body=b"images/bad/good.png\nimages/bad/nowhere.png\n",
    )
    names = ("bad.manifest.csv", "broken.jpg", "huge.png", "empty.mp4", "strict.manifest.csv")
    uris = {name: f"s3://{bucket}/input/{name}" for name in names}
    details = finish(stack, aws, set(uris.values()))

    skipped = details[uris["bad.manifest.csv"]]
    assert skipped["status"] == "SUCCEEDED", skipped
    assert skipped["bad_rows"] == 3 and skipped["rows"] == 5
    records = read_jsonl(s3, bucket, skipped["output_uri"])
    assert [r["key"] for r in records] == [
        "images/bad/good.png", "images/bad/not-an-image.jpg", "images/bad/huge.png",
        "images/bad/missing.png", "images/bad/good.png",
    ]  # fmt: skip
    assert [("error" in r) for r in records] == [False, True, True, True, False]
    assert "cannot be decoded as an image" in records[1]["error"]
    assert "2000x2000 pixels, over the 1000000-pixel limit" in records[2]["error"]
    assert "does not exist" in records[3]["error"]
    assert records[0]["detections"][0]["label"] == "blue"
    report_key = skipped["errors_uri"].removeprefix(f"s3://{bucket}/")
    report = s3.get_object(Bucket=bucket, Key=report_key)["Body"].read().decode().splitlines()
    assert report[0] == "line,column,reason"
    assert [line.split(",", 1)[0] for line in report[1:]] == ["3", "4", "5"]  # manifest lines
    assert f"s3://{bucket}/images/bad/huge.png: the image is 2000x2000 pixels" in report[2]

    failures = {
        "broken.jpg": f"s3://{bucket}/input/broken.jpg: cannot be decoded as an image",
        "huge.png": "over the 1000000-pixel limit (BYOM_MAX_IMAGE_PIXELS)",
        "empty.mp4": f"s3://{bucket}/input/empty.mp4: the video has no frames",
        "strict.manifest.csv": f"{uris['strict.manifest.csv']}, line 2: "
        f"s3://{bucket}/images/bad/nowhere.png does not exist",
    }
    for name, expected in failures.items():
        detail = details[uris[name]]
        assert detail["status"] == "FAILED", (name, detail)
        assert expected in detail["error"], (name, detail["error"])
        assert detail["output_uri"] is None
    outputs = keys_under(s3, bucket, "output/")
    assert not [key for key in outputs if "broken" in key or "empty" in key or "strict" in key]


def test_zip_archive_of_images_is_read_by_ranges(stack, aws, session):
    import zipfile

    s3, bucket = aws["s3"], stack.config.bucket
    images = {
        "photos/one.png": picture(64, 64, (30, 30, 60, 60), "blue"),
        "photos/two.png": picture(90, 60, (10, 10, 50, 40), "green"),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photos/one.png", png(images["photos/one.png"]), zipfile.ZIP_STORED)
        archive.writestr("README.txt", "not an image: passed over")
        archive.writestr("photos/broken.jpg", b"not a jpeg", zipfile.ZIP_DEFLATED)
        archive.writestr("photos/two.png", png(images["photos/two.png"]), zipfile.ZIP_DEFLATED)
    key = "input/photos.zip"
    s3.put_object(
        Bucket=bucket, Key=key, Body=buffer.getvalue(), Metadata={"byom-on-bad-rows": "skip"}
    )
    uri = f"s3://{bucket}/{key}"
    detail = finish(stack, aws, {uri})[uri]
    assert detail["status"] == "SUCCEEDED", detail
    assert detail["rows"] == 3 and detail["bad_rows"] == 1
    records = read_jsonl(s3, bucket, detail["output_uri"])
    assert [(r["key"], r["member"]) for r in records] == [
        (key, "photos/one.png"), (key, "photos/broken.jpg"), (key, "photos/two.png"),
    ]  # fmt: skip
    assert "cannot be decoded as an image" in records[1]["error"]
    for record in (records[0], records[2]):
        image = images[record["member"]]
        (found,) = record["detections"]
        expected_box, _ = model_box(session, image)
        np.testing.assert_allclose(found["box"], expected_box, atol=1e-4)
        np.testing.assert_allclose(found["box"], _drawn_box(image), atol=2.5)
    report_key = detail["errors_uri"].removeprefix(f"s3://{bucket}/")
    report = s3.get_object(Bucket=bucket, Key=report_key)["Body"].read().decode()
    # Its place in the archive (README.txt is the second member) and its name.
    assert report.splitlines()[1].startswith(f"3,,{uri} (member 'photos/broken.jpg'): cannot")


def test_manifest_prefix_lists_the_images_under_it_in_key_order(stack, aws):
    s3, bucket = aws["s3"], stack.config.bucket
    colours = {"images/prefixed/2.png": "green", "images/prefixed/1.png": "red"}
    for key, colour in colours.items():
        s3.put_object(Bucket=bucket, Key=key, Body=png(picture(64, 64, (5, 5, 25, 25), colour)))
    s3.put_object(Bucket=bucket, Key="images/prefixed/notes.txt", Body=b"not an image")
    lines = [{"prefix": f"s3://{bucket}/images/prefixed/"}, "images/prefixed/2.png"]
    key = "input/prefixed.manifest.jsonl"
    body = "\n".join(json.dumps(line) for line in lines).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    # SageMaker's own ManifestFile: a prefix, then keys relative to it.
    sagemaker = [{"prefix": f"s3://{bucket}/images/prefixed/"}, "2.png", "1.png"]
    s3.put_object(Bucket=bucket, Key="input/sm.manifest.json", Body=json.dumps(sagemaker).encode())
    uri, sm_uri = f"s3://{bucket}/{key}", f"s3://{bucket}/input/sm.manifest.json"
    details = finish(stack, aws, {uri, sm_uri})
    detail = details[uri]
    assert detail["status"] == "SUCCEEDED", detail
    records = read_jsonl(s3, bucket, detail["output_uri"])
    keys = ["images/prefixed/1.png", "images/prefixed/2.png", "images/prefixed/2.png"]
    assert [record["key"] for record in records] == keys
    assert [record["detections"][0]["label"] for record in records] == ["red", "green", "green"]
    assert "annotated" not in records[0]  # nothing drawn unless asked
    assert details[sm_uri]["output_uri"].endswith("-sm.jsonl")
    records = read_jsonl(s3, bucket, details[sm_uri]["output_uri"])
    assert [record["key"] for record in records] == [keys[1], keys[0]]


def test_a_published_detector_is_chosen_by_the_upload(stack, aws, tmp_path):
    from model.publish import publish

    s3, bucket = aws["s3"], stack.config.bucket
    french = detector_manifest(SIZE).replace('"red", "green", "blue"', '"rouge", "vert", "bleu"')
    package = write_package(tmp_path / "couleurs", bright_box_detector(SIZE), french)
    publish(package, "couleurs", "1", bucket=bucket, s3=s3)
    s3.put_object(
        Bucket=bucket, Key="images/chosen/x.png", Body=png(picture(64, 64, (9, 9, 29, 29), "green"))
    )
    key = "input/chosen.manifest.csv"
    s3.put_object(
        Bucket=bucket, Key=key, Body=b"images/chosen/x.png\n", Metadata={"byom-model": "couleurs"}
    )
    uri = f"s3://{bucket}/{key}"
    detail = finish(stack, aws, {uri})[uri]
    assert detail["status"] == "SUCCEEDED", detail
    assert (detail["model_name"], detail["model_version"]) == ("couleurs", "1")
    (record,) = read_jsonl(s3, bucket, detail["output_uri"])
    assert [found["label"] for found in record["detections"]] == ["vert"]
