"""The runtime seam: what a flavor loads, what the server calls, and how either fails.

A flavor turns the files of a model directory into a `Model`, an object that only
needs `predict`. Flavors import their framework inside `load`, so that the server
pays only for the framework it serves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import numpy as np

from model.errors import ByomModelError


class ModelLoadError(ByomModelError):
    """The model directory holds nothing that can be served; the message says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class BadRequest(ByomModelError, ValueError):
    """The caller's input cannot be scored as sent: fixing the request fixes it.

    Also a `ValueError`, as it always was, for callers that catch that.
    """

    status = 400


class Model(Protocol):
    @property
    def feature_count(self) -> int | None:
        """Columns each input row must have, or None when the model does not say."""
        ...

    @property
    def description(self) -> str:
        """A few words for logs: flavor, artifact, shape."""
        ...

    def predict(self, features: np.ndarray) -> np.ndarray:
        """One prediction per row of a 2-D float32 array (1-D, or 2-D for several outputs).

        Raises `BadRequest` when the rows do not fit the model.
        """
        ...


class Flavor(Protocol):
    name: str

    def artifact(self, model_dir: Path) -> Path | None:
        """The file in `model_dir` this flavor would load, or None if there is none."""
        ...

    def load(self, artifact: Path, *, threads: int) -> Model:
        """The model in `artifact`, predicting with `threads` threads per call.

        Raises `ModelLoadError` when the file cannot be loaded.
        """
        ...


def check_rows(features: np.ndarray, feature_count: int | None) -> np.ndarray:
    """`features` as a C-contiguous 2-D float32 array of the model's width."""
    if features.ndim != 2:
        raise BadRequest(f"expected rows of features (a 2-D array), got {features.ndim} dimensions")
    if feature_count is not None and features.shape[1] != feature_count:
        raise BadRequest(f"expected {feature_count} features per row, got {features.shape[1]}")
    return np.ascontiguousarray(features, dtype=np.float32)


def class_scores(probabilities: np.ndarray) -> np.ndarray:
    """A classifier's answer: binary, the positive class's probability per row (1-D);
    multi-class, one column per class; a single column, that column (1-D)."""
    scores = np.asarray(probabilities)
    if scores.ndim == 2 and scores.shape[1] <= 2:
        return scores[:, -1]
    return scores


def single_file(model_dir: Path, suffix: str, what: str) -> Path | None:
    """The one visible file with ``suffix`` in ``model_dir``, None if there is none;
    several are refused, since which one is the model would be a guess."""
    candidates = sorted(
        path
        for path in model_dir.iterdir()
        if path.suffix == suffix and path.is_file() and not path.name.startswith(".")
    )
    if len(candidates) > 1:
        names = ", ".join(path.name for path in candidates)
        raise ModelLoadError(model_dir, f"several {what} files ({names}); keep one")
    return candidates[0] if candidates else None


def inside(model_dir: Path, name: str) -> Path:
    """`name` resolved within `model_dir`; `ModelLoadError` if it points elsewhere."""
    path = (model_dir / name).resolve()
    if not path.is_relative_to(model_dir.resolve()):
        raise ModelLoadError(model_dir, f"{name!r} points outside the model directory")
    return path


# "[12:34:56] /workspace/src/c_api/c_api.cc:1532: " before XGBoost's own message.
_NATIVE_PREFIX = re.compile(r"^\[\d{2}:\d{2}:\d{2}\] \S+:\d+: ")


def first_line(error: BaseException) -> str:
    """The informative part of a framework's error, without source positions and the
    C++ stack trace that XGBoost appends."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return _NATIVE_PREFIX.sub("", lines[0]) if lines else type(error).__name__
