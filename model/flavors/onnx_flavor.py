"""ONNX models (`*.onnx`), run by onnxruntime: PyTorch, TensorFlow, scikit-learn...

An ONNX file is a protobuf graph of standard operators: data only. Rows go to the
model's first input as float32 (n, features); the answer is its probabilities
output when it has one (skl2onnx's `output_probability`, or any output named like
`probabilities`), else its first output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model.flavors.base import ModelLoadError, check_rows, class_scores, first_line, single_file

SUFFIX = ".onnx"


def _probabilities_output(outputs: list[Any]) -> Any:
    for output in outputs:
        if "probabilit" in output.name.lower():
            return output
    return outputs[0]


def _as_array(result: Any) -> np.ndarray:
    # skl2onnx's ZipMap answers a list of {class: probability} per row.
    if isinstance(result, list) and result and isinstance(result[0], dict):
        keys = sorted(result[0])
        return np.array([[row[key] for key in keys] for row in result], dtype=np.float32)
    return np.asarray(result)


class ONNXModel:
    def __init__(self, session: Any, artifact: Path) -> None:
        self.session = session
        self.artifact = artifact
        first = session.get_inputs()[0]
        self._input = first.name
        self._dtype = np.float64 if first.type == "tensor(double)" else np.float32
        width = first.shape[1] if len(first.shape) == 2 else None
        self._feature_count = width if isinstance(width, int) and width > 0 else None
        self._output = _probabilities_output(session.get_outputs())
        self._is_probabilities = "probabilit" in self._output.name.lower()

    @property
    def feature_count(self) -> int | None:
        return self._feature_count

    @property
    def description(self) -> str:
        providers = ", ".join(self.session.get_providers())
        return (
            f"onnx model {self.artifact} ({self._feature_count or 'any'} features, "
            f"output {self._output.name!r}, {providers})"
        )

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = check_rows(features, self._feature_count).astype(self._dtype, copy=False)
        # InferenceSession.run may be called from several threads at once.
        (result,) = self.session.run([self._output.name], {self._input: rows})
        scores = _as_array(result)
        if self._is_probabilities:
            return class_scores(scores)
        if scores.ndim == 2 and scores.shape[1] == 1:
            return scores[:, 0]
        return scores


class ONNXFlavor:
    name = "onnx"

    def artifact(self, model_dir: Path) -> Path | None:
        return single_file(model_dir, SUFFIX, "ONNX")

    def load(self, artifact: Path, *, threads: int) -> ONNXModel:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = onnxruntime.InferenceSession(
                str(artifact), sess_options=options, providers=providers
            )
        except Exception as exc:
            raise ModelLoadError(artifact, f"not a valid ONNX model: {first_line(exc)}") from exc
        if not session.get_inputs() or not session.get_outputs():
            raise ModelLoadError(artifact, "the ONNX graph has no inputs or no outputs")
        return ONNXModel(session, artifact)
