from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost

from model import train as training
from model.data import FEATURES, generate
from model.flavors import BadRequest, ModelLoadError, load_model

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "model" / "sample" / "sample.csv"
DEFAULT_MODEL = REPO / "model" / "artifacts" / training.MODEL_FILE


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small model trained here, its directory, and rows to score."""
    frame = generate(600, seed=1, fraud_rate=0.1)
    booster = training.train(frame, rounds=5, seed=1)
    model_dir = tmp_path_factory.mktemp("tiny")
    booster.save_model(str(model_dir / "xgboost-model.json"))
    rows = generate(200, seed=2, fraud_rate=0.1).loc[:, list(FEATURES)].to_numpy(np.float32)
    return model_dir, booster, rows


def native(booster: xgboost.Booster, rows: np.ndarray) -> np.ndarray:
    return booster.predict(xgboost.DMatrix(rows, feature_names=list(FEATURES)))


class TouchOnUnpickle:
    """Unpickling this creates a file: proof that a loader ran code from a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_served_predictions_equal_native_ones(tiny):
    model_dir, booster, rows = tiny
    model = load_model(model_dir)
    assert model.feature_count == 30
    predictions = model.predict(rows)
    assert predictions.shape == (200,)
    np.testing.assert_allclose(predictions, native(booster, rows), rtol=0, atol=1e-6)
    assert "xgboost-model.json" in model.description


def test_ubj_and_any_single_json_name_load(tiny, tmp_path):
    _, booster, rows = tiny
    for name in ("model.ubj", "fraud.json"):
        model_dir = tmp_path / name
        model_dir.mkdir()
        booster.save_model(str(model_dir / name))
        (model_dir / "README.md").write_text("notes next to the model are ignored")
        predictions = load_model(model_dir).predict(rows)
        np.testing.assert_allclose(predictions, native(booster, rows), rtol=0, atol=1e-6)


def test_float64_and_empty_input(tiny):
    model_dir, booster, rows = tiny
    model = load_model(model_dir)
    np.testing.assert_allclose(model.predict(rows.astype(np.float64)), native(booster, rows))
    assert model.predict(np.empty((0, 30), dtype=np.float32)).shape == (0,)


@pytest.mark.parametrize("width", [29, 31, 1])
def test_wrong_width_is_a_bad_request(tiny, width):
    model = load_model(tiny[0])
    with pytest.raises(BadRequest, match=f"expected 30 features per row, got {width}") as caught:
        model.predict(np.zeros((3, width), dtype=np.float32))
    assert caught.value.status == 400 and isinstance(caught.value, ValueError)


def test_one_dimensional_input_is_a_bad_request(tiny):
    with pytest.raises(BadRequest, match="2-D"):
        load_model(tiny[0]).predict(np.zeros(30, dtype=np.float32))


@pytest.mark.parametrize(
    "name", ["model.pkl", "model.joblib", "xgboost-model", "model.bst", "weights.data"]
)
def test_pickles_are_refused_and_never_unpickled(tmp_path, name):
    marker = tmp_path / "unpickled"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / name).write_bytes(pickle.dumps(TouchOnUnpickle(marker), protocol=4))

    with pytest.raises(ModelLoadError, match="may be a pickle") as caught:
        load_model(model_dir)
    assert caught.value.path == model_dir / name
    assert name in str(caught.value) and "BYOM_ALLOW_PICKLE" in str(caught.value)
    assert not marker.exists()

    # The opt-in does unpickle, which shows the refusal above was the loader's doing.
    with pytest.raises(ModelLoadError, match="no predict method"):
        load_model(model_dir, allow_pickle=True)
    assert marker.exists()


def test_data_only_model_wins_over_a_pickle_next_to_it(tiny, tmp_path):
    _, booster, rows = tiny
    marker = tmp_path / "unpickled"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    booster.save_model(str(model_dir / "xgboost-model.json"))
    (model_dir / "model.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    load_model(model_dir, allow_pickle=True).predict(rows)
    assert not marker.exists()


def test_pickled_booster_loads_with_opt_in(tiny, tmp_path):
    _, booster, rows = tiny
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(booster))
    model = load_model(tmp_path, allow_pickle=True)
    assert model.feature_count == 30
    np.testing.assert_allclose(model.predict(rows), native(booster, rows), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("xgboost-model.json", b'{"learner": {"attributes": ', "not valid JSON"),
        ("xgboost-model.json", b"\xff\xfe garbage", "not valid JSON"),
        ("xgboost-model.json", b'{"hello": "world"}', "not an XGBoost model"),
        ("xgboost-model.json", b"", "empty"),
        ("xgboost-model.json", b'{"learner": {}, "version": [3, 2, 0]}', "not a valid XGBoost"),
        ("model.ubj", b"not ubjson at all", "not a valid XGBoost model: .*Invalid model format"),
    ],
)
def test_corrupt_model_file_is_named_with_the_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as caught:
        load_model(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: ")
    assert "Stack trace" not in message and "[bt]" not in message


def test_truncated_real_model_is_refused(tiny, tmp_path):
    data = (tiny[0] / "xgboost-model.json").read_bytes()
    (tmp_path / "xgboost-model.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"xgboost-model\.json: not valid JSON"):
        load_model(tmp_path)


def test_missing_empty_and_ambiguous_directories(tiny, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("no model here")
    with pytest.raises(ModelLoadError, match=r"no model file; .* found notes\.txt"):
        load_model(tmp_path)
    booster = tiny[1]
    booster.save_model(str(tmp_path / "a.json"))
    booster.save_model(str(tmp_path / "b.ubj"))
    with pytest.raises(ModelLoadError, match=r"several model files \(a\.json, b\.ubj\)"):
        load_model(tmp_path)


@pytest.fixture(scope="module")
def default_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model `make model` trains; trained here with the same defaults if absent."""
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL.parent
    out = tmp_path_factory.mktemp("default-model")
    assert training.main(["--out", str(out)]) == 0
    return out


def test_sample_rows_score_as_labelled(default_model_dir):
    lines = SAMPLE.read_text().splitlines()
    assert len(lines) == 7 and all(line.count(",") == 29 for line in lines)
    rows = pd.read_csv(SAMPLE, header=None, dtype=np.float32).to_numpy()
    scores = load_model(default_model_dir).predict(rows)
    fraud = np.array([False, True, False, True, False, True, False])
    assert (scores[fraud] > 0.9).all(), scores
    assert (scores[~fraud] < 0.05).all(), scores


# --- the other flavors: tiny models built here, detection and refusals ---------------


def classes(count: int, rows: int = 240, width: int = 4, seed: int = 3):
    """Rows and labels of `count` classes, separable enough for a few trees."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, width)).astype(np.float32)
    labels = np.digitize(features[:, 0] + 0.3 * features[:, 1], np.linspace(-1, 1, count - 1))
    return features, labels


def lightgbm_booster(count: int = 2):
    import lightgbm

    features, labels = classes(count)
    params: dict[str, object] = {
        "verbose": -1,
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "num_threads": 1,
    }
    params |= {"objective": "binary"} if count == 2 else {"objective": "multiclass"}
    if count > 2:
        params["num_class"] = count
    return lightgbm.train(params, lightgbm.Dataset(features, label=labels), num_boost_round=4)


def sklearn_pipeline(count: int = 2):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = classes(count)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)


def onnx_logistic(path: Path, weights: np.ndarray, bias: float) -> None:
    """A logistic regression as an ONNX graph: `score` = x @ w + b, then
    `probabilities` = sigmoid(score), the output the flavor should pick."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = len(weights)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["score"]),
            helper.make_node("Sigmoid", ["score"], ["probabilities"]),
        ],
        "logistic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 1]),
        ],
        initializer=[
            numpy_helper.from_array(weights.reshape(width, 1).astype(np.float32), "w"),
            numpy_helper.from_array(np.array([bias], dtype=np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def write_mlmodel(model_dir: Path, flavors: str) -> None:
    (model_dir / "MLmodel").write_text(f"artifact_path: model\nflavors:\n{flavors}")


def test_sagemaker_xgboost_model_file_loads(tiny, tmp_path):
    _, booster, rows = tiny
    # What SageMaker's XGBoost writes: save_model output under a bare name.
    booster.save_model(str(tmp_path / "saved.ubj"))
    (tmp_path / "saved.ubj").rename(tmp_path / "xgboost-model")
    model = load_model(tmp_path)
    assert model.feature_count == 30 and "xgboost-model " in model.description
    np.testing.assert_allclose(model.predict(rows), native(booster, rows), rtol=0, atol=1e-6)


def test_pickled_sagemaker_xgboost_model_is_refused(tiny, tmp_path):
    _, booster, rows = tiny
    (tmp_path / "xgboost-model").write_bytes(pickle.dumps(booster))
    with pytest.raises(ModelLoadError, match=r"SageMaker's XGBoost before 1\.3") as caught:
        load_model(tmp_path)
    assert str(tmp_path / "xgboost-model") in str(caught.value)
    assert "BYOM_ALLOW_PICKLE" in str(caught.value)
    model = load_model(tmp_path, allow_pickle=True)
    np.testing.assert_allclose(model.predict(rows), native(booster, rows), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["model.txt", "model.lgb", "booster"])
def test_lightgbm_found_by_name_or_header(tmp_path, name):
    booster = lightgbm_booster(3)
    booster.save_model(str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("notes next to the model are ignored")
    model = load_model(tmp_path)
    assert model.feature_count == 4 and "lightgbm" in model.description
    rows = classes(3, seed=9)[0]
    predictions = model.predict(rows)
    assert predictions.shape == (240, 3)
    np.testing.assert_allclose(predictions, booster.predict(rows), rtol=0, atol=1e-6)
    assert model.predict(rows[:0]).shape == (0, 3)


def test_lightgbm_model_txt_that_is_not_a_model(tmp_path):
    (tmp_path / "model.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match=r"model\.txt: not a LightGBM text model"):
        load_model(tmp_path)


def test_skops_pipeline_binary_and_multiclass(tmp_path):
    import skops.io

    rows = classes(2, seed=9)[0]
    for count in (2, 3):
        pipeline = sklearn_pipeline(count)
        model_dir = tmp_path / str(count)
        model_dir.mkdir()
        skops.io.dump(pipeline, model_dir / "model.skops")
        model = load_model(model_dir)
        assert model.feature_count == 4 and "skops Pipeline" in model.description
        want = pipeline.predict_proba(rows)
        want = want[:, 1] if count == 2 else want
        np.testing.assert_allclose(model.predict(rows), want, rtol=0, atol=1e-6)


def test_skops_regressor_predicts_values(tmp_path):
    import skops.io
    from sklearn.linear_model import Ridge

    features, labels = classes(3)
    regressor = Ridge().fit(features, labels.astype(float))
    skops.io.dump(regressor, tmp_path / "model.skops")
    predictions = load_model(tmp_path).predict(features)
    np.testing.assert_allclose(predictions, regressor.predict(features), rtol=0, atol=1e-6)


def test_skops_untrusted_type_is_named_and_refused(tmp_path):
    import skops.io
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, labels = classes(2)
    estimator = HistGradientBoostingClassifier(max_iter=2).fit(features, labels)
    skops.io.dump(estimator, tmp_path / "model.skops")
    untrusted = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    with pytest.raises(ModelLoadError, match="not trusted: " + untrusted.replace(".", r"\.")):
        load_model(tmp_path)
    model = load_model(tmp_path, trusted_types=[untrusted])
    want = estimator.predict_proba(features)[:, 1]
    np.testing.assert_allclose(model.predict(features), want, rtol=0, atol=1e-6)


def test_joblib_needs_the_opt_in(tmp_path):
    import joblib

    pipeline = sklearn_pipeline(3)
    joblib.dump(pipeline, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError, match="BYOM_ALLOW_PICKLE"):
        load_model(tmp_path)
    rows = classes(3, seed=9)[0]
    predictions = load_model(tmp_path, allow_pickle=True).predict(rows)
    np.testing.assert_allclose(predictions, pipeline.predict_proba(rows), rtol=0, atol=1e-6)


def test_pickled_lightgbm_booster_loads_with_opt_in(tmp_path):
    booster = lightgbm_booster(2)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(booster))
    model = load_model(tmp_path, allow_pickle=True)
    assert model.feature_count == 4 and "lightgbm" in model.description
    rows = classes(2, seed=9)[0]
    np.testing.assert_allclose(model.predict(rows), booster.predict(rows), rtol=0, atol=1e-6)


def test_onnx_picks_the_probabilities_output(tmp_path):
    weights = np.array([1.5, -2.0, 0.5, 0.0])
    onnx_logistic(tmp_path / "model.onnx", weights, 0.25)
    model = load_model(tmp_path, threads=2)
    assert model.feature_count == 4
    assert "'probabilities'" in model.description and "CPUExecutionProvider" in model.description
    rows = classes(2, seed=9)[0]
    want = 1 / (1 + np.exp(-(rows.astype(np.float64) @ weights + 0.25)))
    predictions = model.predict(rows)
    assert predictions.shape == (240,)
    np.testing.assert_allclose(predictions, want, rtol=0, atol=1e-5)
    with pytest.raises(BadRequest, match="expected 4 features per row, got 3"):
        model.predict(rows[:, :3])


def test_onnx_that_is_not_a_model(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not protobuf")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: not a valid ONNX model"):
        load_model(tmp_path)


def test_mlflow_directory_loads_the_named_artifact(tiny, tmp_path):
    _, booster, rows = tiny
    booster.save_model(str(tmp_path / "model.json"))
    (tmp_path / "model.json").rename(tmp_path / "model.xgb")
    for extra in ("conda.yaml", "python_env.yaml", "requirements.txt"):
        (tmp_path / extra).write_text("")
    write_mlmodel(
        tmp_path,
        "  python_function:\n    loader_module: mlflow.xgboost\n    data: model.xgb\n"
        "  xgboost:\n    data: model.xgb\n    model_class: xgboost.core.Booster\n",
    )
    model = load_model(tmp_path)
    np.testing.assert_allclose(model.predict(rows), native(booster, rows), rtol=0, atol=1e-6)


def test_mlflow_unsupported_flavor_lists_the_supported_ones(tmp_path):
    write_mlmodel(tmp_path, "  python_function: {}\n  pytorch:\n    model_data: data\n")
    with pytest.raises(
        ModelLoadError,
        match=r"MLmodel: unsupported MLflow flavor \(python_function, pytorch\); "
        r"supported: onnx, xgboost, lightgbm, sklearn",
    ):
        load_model(tmp_path)


def test_mlflow_sklearn_pickle_needs_the_opt_in(tmp_path):
    marker = tmp_path / "unpickled"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    write_mlmodel(
        model_dir,
        "  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n",
    )
    with pytest.raises(ModelLoadError, match=r"model\.pkl: refusing .* BYOM_ALLOW_PICKLE"):
        load_model(model_dir)
    assert not marker.exists()


def test_mlflow_skops_and_paths_outside_the_directory(tmp_path):
    import skops.io

    pipeline = sklearn_pipeline(2)
    skops.io.dump(pipeline, tmp_path / "model.skops")
    write_mlmodel(
        tmp_path, "  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    )
    rows = classes(2, seed=9)[0]
    want = pipeline.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(load_model(tmp_path).predict(rows), want, rtol=0, atol=1e-6)
    write_mlmodel(tmp_path, "  onnx:\n    data: ../elsewhere/model.onnx\n")
    with pytest.raises(ModelLoadError, match="points outside the model directory"):
        load_model(tmp_path)
    (tmp_path / "MLmodel").write_text("just: [text")
    with pytest.raises(ModelLoadError, match="cannot read the MLmodel YAML"):
        load_model(tmp_path)
