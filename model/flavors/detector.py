"""Vision models: an ONNX detector or image classifier held to its `[image]` table.

The workers decode and resize; a request here is a batch of uint8 pixels of the
model's input size, `(n, height, width, 3)` RGB. This module finishes the
pre-processing the package declares (channel order, scale, mean, std, layout),
runs the graph once per batch, and reads its outputs back as detections in the
model's input pixels (boxes `x1, y1, x2, y2`) or as the top classes. Mapping boxes
back onto the original image is the worker's part: it knows how it resized.

Non-maximum suppression runs here when the package says `nms = "server"`, per
class, in numpy (a few hundred boxes an image cost microseconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.flavors.base import BadRequest, ModelLoadError
from model.flavors.onnx_flavor import ONNXModel
from model.image_spec import ImageSpec

Result = dict[str, Any]


class VisionModel:
    """Runs batches of pixels; `predict` on feature rows is refused with a clear reason."""

    def __init__(self, model: ONNXModel, spec: ImageSpec, where: Path) -> None:
        self.session = model.session
        self.spec = spec
        self.artifact = model.artifact
        first = self.session.get_inputs()[0]
        self._input = first.name
        self._uint8_input = first.type == "tensor(uint8)"
        shape = list(first.shape)
        if len(shape) != 4:
            raise ModelLoadError(
                where, f"image: the model's input {first.name!r} has shape {shape}; expected 4-D"
            )
        expected = (3, spec.height, spec.width) if spec.layout == "NCHW" else (
            spec.height, spec.width, 3
        )  # fmt: skip
        for axis, (got, want) in enumerate(zip(shape[1:], expected, strict=True), start=1):
            if isinstance(got, int) and got > 0 and got != want:
                raise ModelLoadError(
                    where,
                    f"image: size {list(spec.size)} and layout {spec.layout} give the input "
                    f"{list(expected)}, but the model's input axis {axis} is {got}",
                )
        outputs = [output.name for output in self.session.get_outputs()]
        if spec.task == "detection" and spec.output == "boxes_scores_labels":
            wanted = [spec.boxes_output, spec.scores_output, spec.labels_output]
            missing = [name for name in wanted if name not in outputs]
            if missing:
                raise ModelLoadError(
                    where,
                    f"image: the model has no output {', '.join(map(repr, missing))} "
                    f"(its outputs: {', '.join(outputs)}); name them with boxes_output, "
                    "scores_output and labels_output",
                )
            self._outputs = wanted
        else:
            self._outputs = [outputs[0]]

    @property
    def feature_count(self) -> int | None:
        return None

    @property
    def description(self) -> str:
        spec = self.spec
        providers = ", ".join(self.session.get_providers())
        nms = f"NMS in the {spec.nms}, " if spec.task == "detection" else ""
        return (
            f"onnx {spec.task} model {self.artifact} ({spec.height}x{spec.width} {spec.layout}, "
            f"{len(spec.labels)} labels, {nms}batch {spec.batch_size}, {providers})"
        )

    def describe(self) -> dict[str, Any]:
        """What a worker needs to prepare pixels for this model."""
        return {
            "task": self.spec.task,
            "size": list(self.spec.size),
            "resize": self.spec.resize,
            "pad_value": self.spec.pad_value,
            "labels": list(self.spec.labels),
            "batch_size": self.spec.batch_size,
        }

    def predict(self, features: np.ndarray) -> np.ndarray:
        raise BadRequest(
            f"this is an image {self.spec.task} model: send uint8 pixels (n, "
            f"{self.spec.height}, {self.spec.width}, 3) as application/x-npy, not feature rows"
        )

    def check_pixels(self, pixels: np.ndarray) -> np.ndarray:
        want = (self.spec.height, self.spec.width, 3)
        if pixels.ndim == 3:
            pixels = pixels[np.newaxis]
        if pixels.ndim != 4 or pixels.shape[1:] != want or not len(pixels):
            raise BadRequest(
                f"expected uint8 pixels of shape (n, {want[0]}, {want[1]}, 3), the model's input "
                f"size; got {pixels.shape}"
            )
        if pixels.dtype != np.uint8:
            raise BadRequest(f"expected uint8 pixels, got {pixels.dtype}")
        return pixels

    def tensor(self, pixels: np.ndarray) -> np.ndarray:
        """The model's input for uint8 RGB pixels, as the package declares it."""
        spec = self.spec
        x = pixels[..., ::-1] if spec.channels == "BGR" else pixels
        if not self._uint8_input:
            mean = np.asarray(spec.mean, dtype=np.float32)
            std = np.asarray(spec.std, dtype=np.float32)
            x = (x.astype(np.float32) / np.float32(spec.scale) - mean) / std
        if spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def run(self, pixels: np.ndarray) -> list[Result]:
        """One result per image: the model called in batches of at most `batch_size`."""
        results: list[Result] = []
        for start in range(0, len(pixels), self.spec.batch_size):
            batch = pixels[start : start + self.spec.batch_size]
            outputs = self.session.run(self._outputs, {self._input: self.tensor(batch)})
            results.extend(self.read_outputs([np.asarray(o) for o in outputs], len(batch)))
        return results

    def read_outputs(self, outputs: list[np.ndarray], images: int) -> list[Result]:
        spec = self.spec
        if spec.task == "classification":
            return [top_classes(row, spec) for row in _per_image(outputs[0], images, 2)]
        if spec.output == "yolo":
            boxes, scores, labels = decode_yolo(_per_image(outputs[0], images, 3))
        elif spec.output == "yolov8":
            boxes, scores, labels = decode_yolov8(_per_image(outputs[0], images, 3))
        else:
            boxes = _per_image(outputs[0], images, 3).astype(np.float32)
            scores = _per_image(outputs[1], images, 2).astype(np.float32)
            labels = _per_image(outputs[2], images, 2).astype(np.int64)
        return [detections(boxes[i], scores[i], labels[i], spec) for i in range(images)]


def _per_image(array: np.ndarray, images: int, ndim: int) -> np.ndarray:
    if array.ndim == ndim - 1 and images == 1:
        array = array[np.newaxis]
    if array.ndim != ndim or array.shape[0] != images:
        raise ValueError(
            f"the model answered an output of shape {array.shape} for {images} images; "
            f"expected {ndim} dimensions, the first the images"
        )
    return array


def decode_yolo(head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A YOLO (v5-style) head `(n, k, 5 + classes)`: boxes `x1 y1 x2 y2`, scores, labels."""
    if head.shape[2] < 6:
        raise ValueError(f"a YOLO head has 5 + classes values per box; got {head.shape[2]}")
    centre, extent = head[..., 0:2], head[..., 2:4]
    boxes = np.concatenate([centre - extent / 2, centre + extent / 2], axis=-1)
    class_scores = head[..., 5:]
    labels = np.argmax(class_scores, axis=-1)
    scores = head[..., 4] * np.take_along_axis(class_scores, labels[..., None], axis=-1)[..., 0]
    return boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)


def decode_yolov8(head: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A YOLOv8-style head `(n, 4 + classes, k)`: cx cy w h, then class scores, per box."""
    if head.shape[1] < 5:
        raise ValueError(f"a YOLOv8 head has 4 + classes rows per image; got {head.shape[1]}")
    boxes_first = head.transpose(0, 2, 1)  # (n, k, 4 + classes)
    centre, extent = boxes_first[..., 0:2], boxes_first[..., 2:4]
    boxes = np.concatenate([centre - extent / 2, centre + extent / 2], axis=-1)
    class_scores = boxes_first[..., 4:]
    labels = np.argmax(class_scores, axis=-1)
    scores = np.take_along_axis(class_scores, labels[..., None], axis=-1)[..., 0]
    return boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept, best first (greedy non-maximum suppression)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        overlap = width * height
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def detections(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, spec: ImageSpec
) -> Result:
    """One image's detections above the threshold, suppressed per class, best first."""
    keep = np.flatnonzero(scores >= spec.score_threshold)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if spec.nms == "server" and len(keep):
        # Per class: offsetting each class far apart makes one pass do them all.
        offset = (labels.astype(np.float32) * (4.0 * max(spec.size) + 1.0))[:, None]
        kept = nms(boxes + offset, scores, spec.iou_threshold)
    else:
        kept = np.argsort(-scores, kind="stable")
    kept = kept[: spec.max_detections]
    found = []
    for i in kept:
        label = int(labels[i])
        if not 0 <= label < len(spec.labels):
            raise ValueError(
                f"the model answered class {label}; the package names {len(spec.labels)} labels"
            )
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        box = [_clip(x1, spec.width), _clip(y1, spec.height)]
        box += [_clip(x2, spec.width), _clip(y2, spec.height)]
        found.append(
            {
                "box": box,
                "label": spec.labels[label],
                "class": label,
                "score": float(scores[i]),
            }
        )
    return {"detections": found}


def _clip(value: float, limit: int) -> float:
    return min(max(value, 0.0), float(limit))


def top_classes(scores: np.ndarray, spec: ImageSpec) -> Result:
    """A classifier's `top_k` classes; raw logits (outside 0-1) go through a softmax first."""
    values = scores.astype(np.float64)
    if len(values) != len(spec.labels):
        raise ValueError(
            f"the model answered {len(values)} class scores; the package names "
            f"{len(spec.labels)} labels"
        )
    if values.min() < 0 or values.max() > 1:
        values = np.exp(values - values.max())
        values /= values.sum()
    best = np.argsort(-values, kind="stable")[: spec.top_k]
    return {
        "classes": [
            {"label": spec.labels[i], "class": int(i), "score": float(values[i])} for i in best
        ]
    }


def vision_model(model: Any, spec: ImageSpec, where: Path) -> VisionModel:
    """The flavor's model as a vision model; only ONNX graphs can be one."""
    if not isinstance(model, ONNXModel):
        raise ModelLoadError(
            where, "image: vision models are ONNX graphs (flavor 'onnx'); export the model to ONNX"
        )
    return VisionModel(model, spec, where)
