"""Pickled models, served only when the operator says the artifact is trusted.

Unpickling runs whatever code the file names, so a model directory from an
untrusted source must never reach `load` without `allow_pickle`. `load_model`
refuses pickles before this module is consulted; this module only loads them.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

from model.flavors.base import Model, ModelLoadError, check_rows

# Suffixes of pickles and of formats that cannot be told apart from one without
# reading them (joblib, XGBoost's legacy binary .bst, SageMaker's bare
# "xgboost-model"), all treated as "may run code".
SUFFIXES = frozenset({"", ".pkl", ".pickle", ".joblib", ".sav", ".bst", ".model", ".bin", ".dat"})
# Protocol 2 and later begin with PROTO (0x80) and the protocol number.
_MAGIC = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))


def looks_pickled(path: Path) -> bool:
    """A file that may be a pickle: by its name, or by its first two bytes."""
    if path.name.startswith(".") or not path.is_file():
        return False
    if path.suffix.lower() in SUFFIXES:
        return True
    try:
        with path.open("rb") as file:
            return file.read(2) in _MAGIC
    except OSError:
        return False


class PredictorModel:
    """A scikit-learn-style estimator: probabilities of the last class, else `predict`."""

    def __init__(self, estimator: Any, artifact: Path) -> None:
        self.estimator = estimator
        self.artifact = artifact
        count = getattr(estimator, "n_features_in_", None)
        self._feature_count = int(count) if count is not None else None

    @property
    def feature_count(self) -> int | None:
        return self._feature_count

    @property
    def description(self) -> str:
        kind = type(self.estimator).__name__
        return f"pickled {kind} {self.artifact} ({self._feature_count or 'any'} features)"

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = check_rows(features, self._feature_count)
        if hasattr(self.estimator, "predict_proba"):
            return np.asarray(self.estimator.predict_proba(rows))[:, -1]
        return np.asarray(self.estimator.predict(rows))


class PickleFlavor:
    name = "pickle"

    def artifact(self, model_dir: Path) -> Path | None:
        candidates = sorted(path for path in model_dir.iterdir() if looks_pickled(path))
        if len(candidates) > 1:
            names = ", ".join(path.name for path in candidates)
            raise ModelLoadError(model_dir, f"several possible model files ({names}); keep one")
        return candidates[0] if candidates else None

    def load(self, artifact: Path, *, threads: int) -> Model:
        try:
            with artifact.open("rb") as file:
                obj = pickle.load(file)
        except Exception as exc:
            raise ModelLoadError(artifact, f"cannot unpickle the model: {exc}") from exc
        # A pickled Booster has imported xgboost while unpickling; nothing else needs it.
        xgboost = sys.modules.get("xgboost")
        if xgboost is not None and isinstance(obj, xgboost.Booster):
            from model.flavors.xgboost_flavor import XGBoostModel

            return XGBoostModel(obj, artifact, threads=threads)
        if callable(getattr(obj, "predict", None)):
            return PredictorModel(obj, artifact)
        raise ModelLoadError(
            artifact, f"the pickle holds a {type(obj).__name__}, which has no predict method"
        )
