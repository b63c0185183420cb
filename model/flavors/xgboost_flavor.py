"""XGBoost models saved with `Booster.save_model` as JSON or UBJSON.

Both formats are data only: loading one cannot run code, which is why they are
the formats served without any opt-in. SageMaker's built-in XGBoost algorithm
writes `xgboost-model` (no extension): `Booster.save_model` output from version
1.3 on, a pickled Booster before; the pickle is left to the pickle flavor, which
needs the operator's opt-in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.flavors.base import ModelLoadError, check_rows, first_line

if TYPE_CHECKING:
    import xgboost

MODEL_FILE = "xgboost-model.json"
SAGEMAKER_FILE = "xgboost-model"
SUFFIXES = (".json", ".ubj")
PICKLE_PROTO = b"\x80"


class XGBoostModel:
    def __init__(self, booster: xgboost.Booster, artifact: Path, *, threads: int) -> None:
        self.booster = booster
        self.artifact = artifact
        self._feature_count = int(booster.num_features())
        # Each call gets this many OpenMP threads; the server runs several calls at
        # once, so it asks for one per call and lets concurrency fill the cores.
        booster.set_param({"nthread": threads})

    @property
    def feature_count(self) -> int | None:
        return self._feature_count

    @property
    def description(self) -> str:
        return f"xgboost model {self.artifact} ({self._feature_count} features)"

    def predict(self, features: np.ndarray) -> np.ndarray:
        rows = check_rows(features, self._feature_count)
        if not len(rows):
            return np.empty(0, dtype=np.float32)
        # inplace_predict reads the array where it is (no DMatrix copy) and is safe
        # to call from several threads at once. Feature names are not checked:
        # rows arrive as bare CSV, matched to the model by position.
        return np.asarray(self.booster.inplace_predict(rows, validate_features=False))


class XGBoostFlavor:
    name = "xgboost"

    def artifact(self, model_dir: Path) -> Path | None:
        """`xgboost-model.json`, else `xgboost-model.ubj`, else SageMaker's
        `xgboost-model` unless pickled, else the only *.json / *.ubj."""
        for suffix in SUFFIXES:
            preferred = model_dir / f"xgboost-model{suffix}"
            if preferred.is_file():
                return preferred
        sagemaker = model_dir / SAGEMAKER_FILE
        if sagemaker.is_file() and not _pickled(sagemaker):
            return sagemaker
        candidates = sorted(
            path
            for path in model_dir.iterdir()
            if path.suffix in SUFFIXES and path.is_file() and not path.name.startswith(".")
        )
        if len(candidates) > 1:
            names = ", ".join(path.name for path in candidates)
            raise ModelLoadError(
                model_dir,
                f"several model files ({names}); keep one, or name it {MODEL_FILE}",
            )
        return candidates[0] if candidates else None

    def load(self, artifact: Path, *, threads: int) -> XGBoostModel:
        import xgboost

        try:
            data = artifact.read_bytes()
        except OSError as exc:
            raise ModelLoadError(artifact, f"cannot read the model file: {exc.strerror}") from exc
        if not data:
            raise ModelLoadError(artifact, "the model file is empty")
        if data.startswith(PICKLE_PROTO):
            raise ModelLoadError(artifact, "a pickle, not a Booster.save_model file")
        if artifact.suffix == ".json":
            # XGBoost's own parser reports broken JSON poorly (sometimes as a
            # UnicodeDecodeError), so the JSON is checked first.
            try:
                document = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelLoadError(artifact, f"not valid JSON: {exc}") from exc
            if not isinstance(document, dict) or "learner" not in document:
                raise ModelLoadError(
                    artifact,
                    "JSON, but not an XGBoost model (no 'learner' object); "
                    "save models with Booster.save_model",
                )
        booster = xgboost.Booster()
        try:
            if artifact.suffix in SUFFIXES:
                booster.load_model(str(artifact))
            else:
                # From a buffer XGBoost tells JSON from UBJSON by content, where a
                # file name without a known extension would make it warn and guess.
                booster.load_model(bytearray(data))
        except Exception as exc:
            # XGBoostError and, for some damaged files, errors from decoding its
            # message: either way the file is not a usable model.
            raise ModelLoadError(artifact, f"not a valid XGBoost model: {first_line(exc)}") from exc
        return XGBoostModel(booster, artifact, threads=threads)


def _pickled(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(1) == PICKLE_PROTO
    except OSError:
        return False
