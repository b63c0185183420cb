"""Pickled models, served only when the operator says the artifact is trusted.

Unpickling runs whatever code the file names, so a model directory from an
untrusted source must never reach `load` without `allow_pickle`. `load_model`
refuses pickles (with `refusal`) before this module is consulted; this module only
loads them: plain pickles, joblib files, and SageMaker's pickled `xgboost-model`.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from model.flavors.base import Model, ModelLoadError
from model.flavors.sklearn_flavor import EstimatorModel

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


def refusal(path: Path) -> ModelLoadError:
    """The error for a possible pickle when the operator has not opted in."""
    sagemaker = (
        "SageMaker's XGBoost before 1.3 pickled its Booster into xgboost-model; "
        if path.name == "xgboost-model"
        else ""
    )
    return ModelLoadError(
        path,
        f"{sagemaker}refusing to load a file that may be a pickle, since unpickling runs code "
        "from the file; save the model in a data-only format (XGBoost: "
        "Booster.save_model('xgboost-model.json'), LightGBM: save_model('model.txt'), "
        "scikit-learn: skops.io.dump(model, 'model.skops'), or ONNX), or set "
        "BYOM_ALLOW_PICKLE=true if you trust where it came from",
    )


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
            if artifact.suffix.lower() == ".joblib":
                # joblib stores arrays beside the pickle stream; only joblib reads them.
                import joblib

                obj = joblib.load(artifact)
            else:
                with artifact.open("rb") as file:
                    obj = pickle.load(file)
        except Exception as exc:
            raise ModelLoadError(artifact, f"cannot unpickle the model: {exc}") from exc
        # A pickled Booster has imported its framework while unpickling; nothing else needs it.
        xgboost = sys.modules.get("xgboost")
        if xgboost is not None and isinstance(obj, xgboost.Booster):
            from model.flavors.xgboost_flavor import XGBoostModel

            return XGBoostModel(obj, artifact, threads=threads)
        lightgbm = sys.modules.get("lightgbm")
        if lightgbm is not None and isinstance(obj, lightgbm.Booster):
            from model.flavors.lightgbm_flavor import LightGBMModel

            return LightGBMModel(obj, artifact, threads=threads)
        if callable(getattr(obj, "predict", None)):
            return EstimatorModel(obj, artifact, source="pickled")
        raise ModelLoadError(
            artifact, f"the pickle holds a {type(obj).__name__}, which has no predict method"
        )
