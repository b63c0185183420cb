"""LightGBM models saved with `Booster.save_model` as text (`model.txt`, `*.lgb`).

The text format is data only: trees and parameters, nothing to execute. Files are
found by name (`model.txt`, `*.lgb`) or by the header every such file starts with.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.flavors.base import ModelLoadError, check_rows, first_line

if TYPE_CHECKING:
    import lightgbm

MODEL_FILE = "model.txt"
SUFFIX = ".lgb"
HEADER = b"tree\nversion="


def has_header(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(len(HEADER)) == HEADER
    except OSError:
        return False


class LightGBMModel:
    def __init__(self, booster: lightgbm.Booster, artifact: Path, *, threads: int) -> None:
        self.booster = booster
        self.artifact = artifact
        self.threads = threads
        self._feature_count = int(booster.num_feature())
        # One tree per class and round for multi-class models, else one.
        self._outputs = int(booster.num_model_per_iteration())

    @property
    def feature_count(self) -> int | None:
        return self._feature_count

    @property
    def description(self) -> str:
        return f"lightgbm model {self.artifact} ({self._feature_count} features)"

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = check_rows(features, self._feature_count)
        if not len(rows):
            shape = (0, self._outputs) if self._outputs > 1 else (0,)
            return np.empty(shape, dtype=np.float32)
        # Binary: the positive class's probability; multi-class: one column per class;
        # regression: the value. Rows are matched to the model by position.
        return np.asarray(
            self.booster.predict(rows, num_threads=self.threads, validate_features=False)
        )


class LightGBMFlavor:
    name = "lightgbm"

    def artifact(self, model_dir: Path) -> Path | None:
        """`model.txt`, else the only `*.lgb` or file with LightGBM's text header."""
        preferred = model_dir / MODEL_FILE
        if preferred.is_file():
            return preferred
        candidates = sorted(
            path
            for path in model_dir.iterdir()
            if path.is_file()
            and not path.name.startswith(".")
            and (path.suffix == SUFFIX or has_header(path))
        )
        if len(candidates) > 1:
            names = ", ".join(path.name for path in candidates)
            raise ModelLoadError(model_dir, f"several LightGBM model files ({names}); keep one")
        return candidates[0] if candidates else None

    def load(self, artifact: Path, *, threads: int) -> LightGBMModel:
        import lightgbm

        if not has_header(artifact):
            raise ModelLoadError(
                artifact,
                "not a LightGBM text model (no 'tree' header); save models with "
                "Booster.save_model('model.txt')",
            )
        try:
            booster = lightgbm.Booster(model_file=str(artifact))
        except Exception as exc:
            reason = f"not a valid LightGBM model: {first_line(exc)}"
            raise ModelLoadError(artifact, reason) from exc
        return LightGBMModel(booster, artifact, threads=threads)
