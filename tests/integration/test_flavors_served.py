"""Every flavor served by the real model server process: native == served predictions.

Each model is trained or built here, saved in its framework's own format, and
scored through `python -m model.server` with the real sagemaker-runtime client.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xgboost

from tests.integration.test_model_server import Server, http
from tests.unit.test_model_flavors import (
    classes,
    lightgbm_booster,
    onnx_logistic,
    sklearn_pipeline,
    write_mlmodel,
)

pytestmark = pytest.mark.integration

Native = Callable[[np.ndarray], np.ndarray]


def sagemaker_xgboost(model_dir: Path) -> tuple[Native, str]:
    features, labels = classes(2)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=4,
    )
    # SageMaker's built-in algorithm: Booster.save_model output named xgboost-model.
    booster.save_model(str(model_dir / "saved.ubj"))
    (model_dir / "saved.ubj").rename(model_dir / "xgboost-model")
    return lambda rows: booster.predict(xgboost.DMatrix(rows)), "xgboost-model"


def lightgbm_multiclass(model_dir: Path) -> tuple[Native, str]:
    booster = lightgbm_booster(3)
    booster.save_model(str(model_dir / "model.txt"))
    return booster.predict, "model.txt"


def skops_pipeline(model_dir: Path) -> tuple[Native, str]:
    import skops.io

    pipeline = sklearn_pipeline(2)
    skops.io.dump(pipeline, model_dir / "model.skops")
    return lambda rows: pipeline.predict_proba(rows)[:, 1], "skops Pipeline"


def skops_multiclass(model_dir: Path) -> tuple[Native, str]:
    import skops.io

    pipeline = sklearn_pipeline(3)
    skops.io.dump(pipeline, model_dir / "model.skops")
    return pipeline.predict_proba, "skops Pipeline"


def onnx_graph(model_dir: Path) -> tuple[Native, str]:
    weights = np.array([1.5, -2.0, 0.5, 0.25])

    def native(rows: np.ndarray) -> np.ndarray:
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        return session.run(["probabilities"], {"x": rows})[0][:, 0]

    onnx_logistic(model_dir / "model.onnx", weights, -0.5)
    return native, "output 'probabilities'"


def mlflow_lightgbm(model_dir: Path) -> tuple[Native, str]:
    booster = lightgbm_booster(2)
    booster.save_model(str(model_dir / "model.lgb"))
    (model_dir / "requirements.txt").write_text("lightgbm\n")
    write_mlmodel(
        model_dir,
        "  python_function:\n    loader_module: mlflow.lightgbm\n    data: model.lgb\n"
        "  lightgbm:\n    data: model.lgb\n    model_class: lightgbm.basic.Booster\n",
    )
    return booster.predict, "model.lgb"


CASES = {
    "sagemaker-xgboost": (sagemaker_xgboost, 1e-6),
    "lightgbm-multiclass": (lightgbm_multiclass, 1e-6),
    "skops-pipeline": (skops_pipeline, 1e-6),
    "skops-multiclass": (skops_multiclass, 1e-6),
    "onnx": (onnx_graph, 1e-4),
    "mlflow-lightgbm": (mlflow_lightgbm, 1e-6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_served_predictions_equal_the_frameworks(case, tmp_path):
    build, atol = CASES[case]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    native, described = build(model_dir)
    rows = classes(2, rows=50, seed=11)[0]
    want = np.asarray(native(rows), dtype=np.float64)
    body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()

    server = Server(tmp_path / "server.log", model_dir)
    try:
        assert http(f"{server.url}/ping")[0] == 200, server.log()
        # The model's width is known, and reported, for every flavor.
        assert described in server.log() and "(4 features" in server.log()
        client = server.client()
        try:
            answer = client.invoke_endpoint(
                EndpointName="byom-model", ContentType="text/csv", Accept="text/csv", Body=body
            )["Body"].read()
            lines = answer.decode().splitlines()
            assert len(lines) == 50
            # Binary and regression: one value per line; multi-class: p0,p1,p2.
            served = np.array([line.split(",") for line in lines], dtype=np.float64)
            served = served[:, 0] if want.ndim == 1 else served
            assert served.shape == want.shape
            np.testing.assert_allclose(served, want, rtol=0, atol=atol)

            as_json = client.invoke_endpoint(
                EndpointName="byom-model",
                ContentType="text/csv",
                Accept="application/json",
                Body=body,
            )["Body"].read()
            predictions = json.loads(as_json)["predictions"]
            np.testing.assert_allclose(predictions, want, rtol=0, atol=atol)

            buffer = io.BytesIO()
            np.save(buffer, rows[:, :3], allow_pickle=False)
            with pytest.raises(client.exceptions.ModelError, match="expected 4 features"):
                client.invoke_endpoint(
                    EndpointName="byom-model",
                    ContentType="application/x-npy",
                    Body=buffer.getvalue(),
                )
        finally:
            client.close()
    finally:
        assert server.stop() == 0, server.log()


def test_untrusted_skops_type_fails_ping_with_its_name(tmp_path):
    import skops.io
    from sklearn.ensemble import HistGradientBoostingClassifier

    features, labels = classes(2)
    estimator = HistGradientBoostingClassifier(max_iter=2).fit(features, labels)
    skops.io.dump(estimator, tmp_path / "model.skops")
    server = Server(tmp_path / "server.log", tmp_path)
    try:
        status, _, body = http(f"{server.url}/ping")
        assert status == 500
        assert "TreePredictor" in json.loads(body)["error"]
    finally:
        assert server.stop() == 0, server.log()
