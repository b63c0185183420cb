"""A manifest that names its flavor gets the same pickle opt-in as one that does not.

`flavor = "mlflow"` with an MLmodel whose sklearn model is pickled (MLflow's
default) loads with `BYOM_ALLOW_PICKLE=true` and is refused without it, exactly as
the same directory without a manifest.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from model.flavors.base import ModelLoadError
from model.package import load_package


@pytest.fixture
def mlflow_pickled(tmp_path: Path) -> tuple[Path, LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(200, 3)).astype(np.float32)
    estimator = LogisticRegression().fit(rows, rows[:, 0] > 0)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(pickle.dumps(estimator))
    (model_dir / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n"
        "  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n"
    )
    return model_dir, estimator, rows


@pytest.mark.parametrize("manifest", ['flavor = "mlflow"\n', None])
def test_the_pickle_opt_in_reaches_the_named_flavor(
    mlflow_pickled: tuple[Path, LogisticRegression, np.ndarray], manifest: str | None
) -> None:
    model_dir, estimator, rows = mlflow_pickled
    if manifest is not None:
        (model_dir / "byom.toml").write_text(manifest)
    model = load_package(model_dir, allow_pickle=True)
    np.testing.assert_allclose(
        model.predict(rows), estimator.predict_proba(rows)[:, 1], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("manifest", ['flavor = "mlflow"\n', None])
def test_without_the_opt_in_the_pickle_is_refused(
    mlflow_pickled: tuple[Path, LogisticRegression, np.ndarray], manifest: str | None
) -> None:
    model_dir, _, _ = mlflow_pickled
    if manifest is not None:
        (model_dir / "byom.toml").write_text(manifest)
    with pytest.raises(ModelLoadError, match="BYOM_ALLOW_PICKLE"):
        load_package(model_dir)
