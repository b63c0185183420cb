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
