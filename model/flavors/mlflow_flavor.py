"""MLflow model directories: an `MLmodel` file at the root names the artifact.

The artifact is loaded with byom's own flavor for it, so serving an MLflow model
needs no MLflow. Supported MLflow flavors: xgboost, lightgbm, sklearn (skops
serialization; pickle or cloudpickle only with the pickle opt-in) and onnx.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from model.flavors.base import Model, ModelLoadError, inside
from model.flavors.lightgbm_flavor import LightGBMFlavor
from model.flavors.onnx_flavor import ONNXFlavor
from model.flavors.pickled import PickleFlavor, refusal
from model.flavors.sklearn_flavor import SkopsFlavor
from model.flavors.xgboost_flavor import XGBoostFlavor

MLMODEL = "MLmodel"
# In the order tried when an MLmodel names several.
SUPPORTED = ("onnx", "xgboost", "lightgbm", "sklearn")
# The key under each flavor that names its file, and the file MLflow writes by default.
_DATA = {
    "onnx": ("data", "model.onnx"),
    "xgboost": ("data", "model.xgb"),
    "lightgbm": ("data", "model.lgb"),
    "sklearn": ("pickled_model", "model.pkl"),
}


def read_mlmodel(path: Path) -> dict[str, Any]:
    """The `flavors` mapping of an MLmodel file."""
    import yaml  # type: ignore[import-untyped]

    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelLoadError(path, f"cannot read the MLmodel YAML: {exc}") from exc
    flavors = document.get("flavors") if isinstance(document, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        raise ModelLoadError(path, "no 'flavors' mapping; is this an MLflow MLmodel file?")
    return flavors


class MLflowFlavor:
    name = "mlflow"

    def __init__(self, *, allow_pickle: bool = False, trusted_types: Iterable[str] = ()) -> None:
        self.allow_pickle = allow_pickle
        self.trusted_types = frozenset(trusted_types)

    def artifact(self, model_dir: Path) -> Path | None:
        path = model_dir / MLMODEL
        return path if path.is_file() else None

    def load(self, artifact: Path, *, threads: int) -> Model:
        flavors = read_mlmodel(artifact)
        chosen = next((name for name in SUPPORTED if name in flavors), None)
        if chosen is None:
            named = ", ".join(sorted(str(name) for name in flavors))
            raise ModelLoadError(
                artifact,
                f"unsupported MLflow flavor ({named}); supported: {', '.join(SUPPORTED)}. "
                "Save the model with one of those (e.g. mlflow.onnx.save_model)",
            )
        config = flavors[chosen] if isinstance(flavors[chosen], dict) else {}
        key, default = _DATA[chosen]
        name = str(config.get(key, default))
        path = inside(artifact.parent, name)
        if not path.is_file():
            raise ModelLoadError(artifact, f"the {chosen} flavor names {name}, which is missing")
        if chosen == "onnx":
            return ONNXFlavor().load(path, threads=threads)
        if chosen == "xgboost":
            return XGBoostFlavor().load(path, threads=threads)
        if chosen == "lightgbm" and path.suffix != ".pkl":
            return LightGBMFlavor().load(path, threads=threads)
        if config.get("serialization_format") == "skops" or path.suffix == ".skops":
            return SkopsFlavor(self.trusted_types).load(path, threads=threads)
        # sklearn with pickle / cloudpickle, or a LightGBM scikit-learn model.
        if not self.allow_pickle:
            raise refusal(path)
        return PickleFlavor().load(path, threads=threads)
