"""The `[image]` table of `byom.toml`: how a vision model wants its pixels, and what it answers.

    flavor = "onnx"

    [image]
    task = "detection"              # or "classification"
    size = [640, 640]               # the model's input, height and width in pixels
    layout = "NCHW"                 # or "NHWC"
    resize = "letterbox"            # keep the aspect ratio and pad; or "stretch"
    pad_value = 114                 # the letterbox border, 0-255
    channels = "RGB"                # or "BGR"
    scale = 255.0                   # pixel / scale, then (x - mean) / std per channel
    mean = [0.0, 0.0, 0.0]
    std = [1.0, 1.0, 1.0]
    labels = ["person", "bicycle"]  # one name per class index
    score_threshold = 0.25          # detections below are dropped
    output = "boxes_scores_labels"  # three tensors: boxes (n, k, 4: x1 y1 x2 y2 in input
                                    # pixels), scores (n, k), labels (n, k: class indices),
                                    # named by boxes_output, scores_output, labels_output;
                                    # or "yolo": one (n, k, 5 + classes) head of cx cy w h,
                                    # objectness and class scores (YOLOv5); or "yolov8":
                                    # one (n, 4 + classes, k) head without objectness
                                    # (YOLOv8 and later, as Ultralytics exports them)
    nms = "server"                  # the model already did it: "model"
    iou_threshold = 0.45
    max_detections = 100
    batch_size = 32                 # images per model call (the GPU batch)

The workers decode and resize (`resize`, `size`, `pad_value`) and send uint8
pixels; the model server does the rest (`channels`, `scale`, `mean`, `std`,
`layout`), so a request is a quarter of its float32 size. Every key but `task`,
`size` and `labels` has the default shown. Anything else is refused by name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

LabelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\"\\]+$")]
TensorName = Annotated[str, Field(min_length=1, max_length=128)]


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["detection", "classification"]
    size: tuple[Annotated[int, Field(ge=8, le=8192)], Annotated[int, Field(ge=8, le=8192)]]
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: int = Field(default=114, ge=0, le=255)
    channels: Literal["RGB", "BGR"] = "RGB"
    scale: float = Field(default=255.0, gt=0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[
        Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]
    ] = (1.0, 1.0, 1.0)
    labels: list[LabelName] = Field(min_length=1, max_length=100_000)
    score_threshold: float = Field(default=0.25, ge=0.0, le=1.0)
    output: Literal["boxes_scores_labels", "yolo", "yolov8"] = "boxes_scores_labels"
    # The detector's output tensors by name (a YOLO head, or a classifier: its first output).
    boxes_output: TensorName = "boxes"
    scores_output: TensorName = "scores"
    labels_output: TensorName = "labels"
    nms: Literal["server", "model"] = "server"
    iou_threshold: float = Field(default=0.45, gt=0.0, le=1.0)
    max_detections: int = Field(default=100, ge=1, le=10_000)
    top_k: int = Field(default=5, ge=1, le=1000)  # classification: classes per image
    batch_size: int = Field(default=32, ge=1, le=4096)

    @model_validator(mode="after")
    def _consistent(self) -> ImageSpec:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels: names appear more than once")
        if self.task == "classification" and self.output != "boxes_scores_labels":
            raise ValueError("output: 'yolo' is a detector head; a classifier has one output")
        return self

    @property
    def height(self) -> int:
        return self.size[0]

    @property
    def width(self) -> int:
        return self.size[1]
