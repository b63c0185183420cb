"""Vision models built here with onnx.helper, for tests and the benchmark: no downloads.

- `bright_box_detector(size)`: finds the bright region of an image. Its box is the
  bounding box of the pixels brighter than half, its score the brightest pixel,
  its class the dominant colour (red, green, blue); it also answers a second box
  one pixel off with 0.9 of the score, which the server's NMS must remove. The
  boxes depend on the content, so a test can check them against the image.
- `resnet50(size)`: a ResNet-50-shaped classifier (bottlenecks 3-4-6-3, 25 M
  weights, batch norm folded into the convolutions) with random weights: the cost
  of a real one, not its answers.

`write_package(folder, model, manifest)` writes `model.onnx` and `byom.toml`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18  # reductions take their axes as an input
COLOURS = ["red", "green", "blue"]


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def bright_box_detector(size: int) -> onnx.ModelProto:
    """images (n, 3, size, size), floats in [0, 1] -> boxes (n, 2, 4), scores, labels (n, 2)."""
    nodes = [
        _const("half", np.array(0.5, dtype=np.float32)),
        _const("one", np.array(1, dtype=np.int64)),
        _const("shift", np.array([1.0, 1.0, 1.0, 1.0], dtype=np.float32)),
        _const("ninety", np.array(0.9, dtype=np.float32)),
        _const("ch_axis", np.array([1], dtype=np.int64)),
        _const("hw_axes", np.array([2, 3], dtype=np.int64)),
        _const("h_axis", np.array([1], dtype=np.int64)),
        _const("w_axis", np.array([2], dtype=np.int64)),
        _const("plane_axes", np.array([1, 2], dtype=np.int64)),
        helper.make_node("ReduceMean", ["images", "ch_axis"], ["gray"], keepdims=0),
        helper.make_node("Greater", ["gray", "half"], ["bright"]),
        helper.make_node("Cast", ["bright"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask", "h_axis"], ["cols"], keepdims=0),  # (n, W)
        helper.make_node("ReduceMax", ["mask", "w_axis"], ["rows"], keepdims=0),  # (n, H)
        helper.make_node("ArgMax", ["cols"], ["x1"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["cols"], ["x2_last"], axis=1, keepdims=1, select_last_index=1),
        helper.make_node("ArgMax", ["rows"], ["y1"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["rows"], ["y2_last"], axis=1, keepdims=1, select_last_index=1),
        helper.make_node("Add", ["x2_last", "one"], ["x2"]),
        helper.make_node("Add", ["y2_last", "one"], ["y2"]),
        helper.make_node("Concat", ["x1", "y1", "x2", "y2"], ["box_int"], axis=1),
        helper.make_node("Cast", ["box_int"], ["box"], to=TensorProto.FLOAT),  # (n, 4)
        helper.make_node("Add", ["box", "shift"], ["box_shifted"]),
        helper.make_node("Unsqueeze", ["box", "one"], ["box_a"]),
        helper.make_node("Unsqueeze", ["box_shifted", "one"], ["box_b"]),
        helper.make_node("Concat", ["box_a", "box_b"], ["boxes"], axis=1),  # (n, 2, 4)
        helper.make_node("ReduceMax", ["gray", "plane_axes"], ["score"], keepdims=0),  # (n,)
        helper.make_node("Unsqueeze", ["score", "one"], ["score_a"]),
        helper.make_node("Mul", ["score_a", "ninety"], ["score_b"]),
        helper.make_node("Concat", ["score_a", "score_b"], ["scores"], axis=1),  # (n, 2)
        helper.make_node("ReduceMean", ["images", "hw_axes"], ["colour"], keepdims=0),  # (n, 3)
        helper.make_node("ArgMax", ["colour"], ["label"], axis=1, keepdims=1),  # (n, 1)
        helper.make_node("Concat", ["label", "label"], ["labels"], axis=1),  # (n, 2)
    ]
    graph = helper.make_graph(
        nodes,
        "bright_box_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, size, size])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["n", 2, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, ["n", 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def detector_manifest(size: int) -> str:
    return f"""flavor = "onnx"

[image]
task = "detection"
size = [{size}, {size}]
layout = "NCHW"
resize = "letterbox"
pad_value = 0
scale = 255.0
labels = ["red", "green", "blue"]
score_threshold = 0.5
nms = "server"
iou_threshold = 0.5
batch_size = 64
"""


def resnet50(size: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    """A ResNet-50-shaped classifier with random (He-scaled) weights."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    count = 0

    def conv(x: str, out_ch: int, in_ch: int, k: int, stride: int, relu: bool = True) -> str:
        nonlocal count
        count += 1
        w = (rng.standard_normal((out_ch, in_ch, k, k)) * np.sqrt(2.0 / (in_ch * k * k))).astype(
            np.float32
        )
        weights.append(numpy_helper.from_array(w, f"w{count}"))
        weights.append(numpy_helper.from_array(np.zeros(out_ch, np.float32), f"b{count}"))
        y = f"c{count}"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"w{count}", f"b{count}"],
                [y],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
            )
        )
        if not relu:
            return y
        nodes.append(helper.make_node("Relu", [y], [f"r{count}"]))
        return f"r{count}"

    x = conv("images", 64, 3, 7, 2)
    nodes.append(
        helper.make_node(
            "MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
        )
    )
    x, channels = "pool", 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            out = width * 4
            branch = conv(x, width, channels, 1, 1)
            branch = conv(branch, width, width, 3, stride)
            branch = conv(branch, out, width, 1, 1, relu=False)
            shortcut = conv(x, out, channels, 1, stride, relu=False) if block == 0 else x
            count += 1
            nodes.append(helper.make_node("Add", [branch, shortcut], [f"sum{count}"]))
            nodes.append(helper.make_node("Relu", [f"sum{count}"], [f"out{count}"]))
            x, channels = f"out{count}", out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = (rng.standard_normal((channels, classes)) * np.sqrt(1.0 / channels)).astype(np.float32)
    weights.append(numpy_helper.from_array(fc, "fc"))
    nodes.append(helper.make_node("MatMul", ["flat", "fc"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "resnet50_random",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def classifier_manifest(size: int = 224, classes: int = 1000) -> str:
    labels = ", ".join(f'"class_{i}"' for i in range(classes))
    return f"""flavor = "onnx"

[image]
task = "classification"
size = [{size}, {size}]
resize = "stretch"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
labels = [{labels}]
top_k = 5
batch_size = 64
"""


def write_package(folder: Path, model: onnx.ModelProto, manifest: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "byom.toml").write_text(manifest)
    return folder
