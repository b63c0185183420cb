"""scikit-learn estimators and pipelines saved with skops (`skops.io.dump`).

A `.skops` file is a zip of JSON and arrays, not a pickle, but it names the types
to rebuild, and rebuilding a type can run that type's code. So every type the file
names must be one skops trusts by default (scikit-learn, numpy, scipy) or one the
operator lists in `trusted_types`; any other is refused, by name, before loading.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from model.flavors.base import ModelLoadError, check_rows, class_scores, first_line, single_file

SUFFIX = ".skops"


class EstimatorModel:
    """A scikit-learn-style estimator (a Pipeline counts: the model is the whole of it).

    Classifiers answer `predict_proba` (binary: the positive class per row; multi-
    class: one column per class); regressors answer `predict`.
    """

    def __init__(self, estimator: Any, artifact: Path, *, source: str) -> None:
        self.estimator = estimator
        self.artifact = artifact
        self.source = source
        count = getattr(estimator, "n_features_in_", None)
        self._feature_count = int(count) if count is not None else None

    @property
    def feature_count(self) -> int | None:
        return self._feature_count

    @property
    def description(self) -> str:
        kind = type(self.estimator).__name__
        return f"{self.source} {kind} {self.artifact} ({self._feature_count or 'any'} features)"

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = check_rows(features, self._feature_count)
        if not len(rows):
            return np.empty(0, dtype=np.float32)
        if hasattr(self.estimator, "predict_proba"):
            return class_scores(self.estimator.predict_proba(rows))
        return np.asarray(self.estimator.predict(rows))


class SkopsFlavor:
    name = "sklearn"

    def __init__(self, trusted_types: Iterable[str] = ()) -> None:
        self.trusted_types = frozenset(trusted_types)

    def artifact(self, model_dir: Path) -> Path | None:
        return single_file(model_dir, SUFFIX, "skops")

    def load(self, artifact: Path, *, threads: int) -> EstimatorModel:
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(file=artifact)
        except Exception as exc:
            raise ModelLoadError(artifact, f"not a valid skops file: {first_line(exc)}") from exc
        refused = sorted(set(untrusted) - self.trusted_types)
        if refused:
            raise ModelLoadError(
                artifact,
                f"refusing to load types that are not trusted: {', '.join(refused)}; "
                "loading a type can run its code. Pass them as trusted types if you "
                "trust where the model came from",
            )
        try:
            estimator = skops.io.load(artifact, trusted=list(untrusted))
        except Exception as exc:
            reason = f"cannot load the skops file: {first_line(exc)}"
            raise ModelLoadError(artifact, reason) from exc
        if not callable(getattr(estimator, "predict", None)):
            raise ModelLoadError(
                artifact, f"the file holds a {type(estimator).__name__}, which has no predict"
            )
        return EstimatorModel(estimator, artifact, source="skops")
