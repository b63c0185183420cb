"""Model flavors: one module per framework, picked by the files in the model directory.

    model = load_model(Path("/opt/ml/model"))
    scores = model.predict(rows)  # 2-D float32 in, one score per row out

Data-only formats are tried first. Anything that may be a pickle is refused unless
the caller passes `allow_pickle=True`, because unpickling runs code from the file.
"""

from __future__ import annotations

from pathlib import Path

from model.flavors.base import BadRequest, Flavor, Model, ModelLoadError
from model.flavors.pickled import PickleFlavor
from model.flavors.xgboost_flavor import XGBoostFlavor

__all__ = ["FLAVORS", "BadRequest", "Flavor", "Model", "ModelLoadError", "load_model"]

# Flavors whose artifacts cannot run code, in order of preference.
FLAVORS: tuple[Flavor, ...] = (XGBoostFlavor(),)
_PICKLE = PickleFlavor()


def load_model(model_dir: Path, *, allow_pickle: bool = False, threads: int = 1) -> Model:
    """The model in `model_dir`, predicting with `threads` threads per call.

    Raises `ModelLoadError` naming the directory or file and the reason.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        reason = "is not a directory" if model_dir.exists() else "does not exist"
        raise ModelLoadError(model_dir, f"the model directory {reason}")
    for flavor in FLAVORS:
        artifact = flavor.artifact(model_dir)
        if artifact is not None:
            return flavor.load(artifact, threads=threads)
    pickled = _PICKLE.artifact(model_dir)
    if pickled is not None:
        if allow_pickle:
            return _PICKLE.load(pickled, threads=threads)
        raise ModelLoadError(
            pickled,
            "refusing to load a file that may be a pickle, since unpickling runs code "
            "from the file; save the model in a data-only format "
            "(XGBoost: Booster.save_model('xgboost-model.json')), or set "
            "BYOM_ALLOW_PICKLE=true if you trust where it came from",
        )
    found = sorted(path.name for path in model_dir.iterdir() if not path.name.startswith("."))
    raise ModelLoadError(
        model_dir,
        "no model file; expected xgboost-model.json (or one *.json / *.ubj file), "
        f"found {', '.join(found) if found else 'nothing'}",
    )
