"""A script that leaves handlers out gets the defaults of the container its image
names (model/framework_handlers.py), as SageMaker's framework containers supply them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import xgboost
from sklearn import tree
from sklearn.datasets import load_iris

from model.codecs import UnsupportedFormat
from model.flavors.base import ModelLoadError
from model.inference_script import load_script

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

JOBLIB_MODEL_FN = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""

BOOSTER_MODEL_FN = """
import os
import xgboost

def model_fn(model_dir):
    booster = xgboost.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model.json"))
    return booster
"""


def script_package(folder: Path, script: str) -> Path:
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "inference.py").write_text(textwrap.dedent(script))
    return folder


def csv_of(rows: np.ndarray) -> bytes:
    return "".join(",".join(map(str, row)) + "\n" for row in rows).encode()


@pytest.fixture
def iris(tmp_path: Path) -> tuple[Path, tree.DecisionTreeClassifier, np.ndarray]:
    features, labels = load_iris(return_X_y=True)
    classifier = tree.DecisionTreeClassifier(random_state=0).fit(features, labels.astype(float))
    package = script_package(tmp_path / "iris", JOBLIB_MODEL_FN)
    joblib.dump(classifier, package / "model.joblib")
    return package, classifier, features[::7]


def test_the_scikit_learn_image_predicts_with_model_predict(iris):
    package, classifier, rows = iris
    model = load_script(package, allow_code=True, image=SKLEARN_IMAGE)
    assert model is not None and "scikit-learn container" in model.description
    body, answer = model.handle(csv_of(rows), "text/csv", None)
    assert answer == "application/json"
    assert body == json.dumps(classifier.predict(rows.astype(np.float32)).tolist()).encode()
    body, answer = model.handle(csv_of(rows), "text/csv", "text/csv")
    assert answer == "text/csv" and body.decode().split() == [
        str(label) for label in classifier.predict(rows)
    ]


def test_other_images_have_no_default_predict_fn(iris):
    package, _, _ = iris
    for image in (None, "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"):
        with pytest.raises(ModelLoadError, match="defines neither predict_fn nor transform_fn"):
            load_script(package, allow_code=True, image=image)
    with pytest.raises(ModelLoadError, match="BYOM_ALLOW_MODEL_CODE"):
        load_script(package, image=SKLEARN_IMAGE)  # still only with the opt-in


def test_the_xgboost_image_reads_csv_and_libsvm_into_a_dmatrix(tmp_path):
    rng = np.random.default_rng(3)
    features = rng.random((60, 4)).astype(np.float32)
    booster = xgboost.train(
        {"objective": "binary:logistic"},
        xgboost.DMatrix(features, label=(features[:, 0] > 0.5).astype(float)),
        num_boost_round=3,
    )
    package = script_package(tmp_path / "xgb", BOOSTER_MODEL_FN)
    booster.save_model(str(package / "xgboost-model.json"))
    model = load_script(package, allow_code=True, image=XGBOOST_IMAGE)
    assert model is not None
    rows = features[:5]
    expected = booster.predict(xgboost.DMatrix(rows)).tolist()
    body, answer = model.handle(csv_of(rows), "text/csv", "application/json")
    assert answer == "application/json"
    np.testing.assert_allclose(json.loads(body), expected, rtol=1e-6)
    body, _ = model.handle(csv_of(rows[:1]), "text/csv", "application/json")  # one row
    np.testing.assert_allclose(json.loads(body), expected[:1], rtol=1e-6)
    libsvm = "".join(
        "0 " + " ".join(f"{i + 1}:{value}" for i, value in enumerate(row)) + "\n" for row in rows
    )
    body, _ = model.handle(libsvm.encode(), "text/libsvm", "application/json")
    np.testing.assert_allclose(json.loads(body), expected, rtol=1e-6)
    with pytest.raises(UnsupportedFormat, match="XGBoost container reads"):
        model.handle(json.dumps(rows.tolist()).encode(), "application/json", None)
