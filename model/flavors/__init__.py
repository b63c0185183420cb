"""Model flavors: one module per framework, picked by the files in the model directory.

    model = load_model(Path("/opt/ml/model"))
    scores = model.predict(rows)  # 2-D float32 in; one score per row out (or one
                                  # column per class for multi-class models)

Data-only formats are tried first, in the order of `flavors()`: an MLflow
`MLmodel`, XGBoost, LightGBM text, scikit-learn through skops, ONNX. Anything that
may be a pickle is refused unless the caller passes `allow_pickle=True`, because
unpickling runs code from the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from model.flavors.base import BadRequest, Flavor, Model, ModelLoadError
from model.flavors.lightgbm_flavor import LightGBMFlavor
from model.flavors.mlflow_flavor import MLflowFlavor
from model.flavors.onnx_flavor import ONNXFlavor
from model.flavors.pickled import PickleFlavor, refusal
from model.flavors.sklearn_flavor import SkopsFlavor
from model.flavors.xgboost_flavor import XGBoostFlavor

__all__ = [
    "FLAVORS",
    "BadRequest",
    "Flavor",
    "Model",
    "ModelLoadError",
    "flavors",
    "load_model",
]

EXPECTED = (
    "MLmodel, xgboost-model.json / xgboost-model (or one *.json / *.ubj file), "
    "model.txt / *.lgb, *.skops or *.onnx"
)


def flavors(*, allow_pickle: bool = False, trusted_types: Iterable[str] = ()) -> tuple[Flavor, ...]:
    """The registry: flavors whose artifacts cannot run code, in order of preference."""
    trusted = frozenset(trusted_types)
    return (
        MLflowFlavor(allow_pickle=allow_pickle, trusted_types=trusted),
        XGBoostFlavor(),
        LightGBMFlavor(),
        SkopsFlavor(trusted),
        ONNXFlavor(),
    )


FLAVORS: tuple[Flavor, ...] = flavors()
_PICKLE = PickleFlavor()


def load_model(
    model_dir: Path,
    *,
    allow_pickle: bool = False,
    threads: int = 1,
    trusted_types: Iterable[str] = (),
) -> Model:
    """The model in `model_dir`, predicting with `threads` threads per call.

    `trusted_types` names types a skops file may hold beyond those skops trusts by
    default. Raises `ModelLoadError` naming the directory or file and the reason.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        reason = "is not a directory" if model_dir.exists() else "does not exist"
        raise ModelLoadError(model_dir, f"the model directory {reason}")
    for flavor in flavors(allow_pickle=allow_pickle, trusted_types=trusted_types):
        artifact = flavor.artifact(model_dir)
        if artifact is not None:
            return flavor.load(artifact, threads=threads)
    pickled = _PICKLE.artifact(model_dir)
    if pickled is not None:
        if allow_pickle:
            return _PICKLE.load(pickled, threads=threads)
        raise refusal(pickled)
    found = sorted(path.name for path in model_dir.iterdir() if not path.name.startswith("."))
    raise ModelLoadError(
        model_dir,
        f"no model file; expected {EXPECTED}, found {', '.join(found) if found else 'nothing'}",
    )
