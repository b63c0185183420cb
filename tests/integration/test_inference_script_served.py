"""SageMaker inference scripts (`code/inference.py`), unchanged, served by the real
model server around an XGBoost model trained here."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xgboost

from model.data import generate
from model.train import train
from tests.integration.test_model_package_served import model_bytes, pack, rows
from tests.integration.test_model_server import Server, http

pytestmark = pytest.mark.integration

ALLOW = {"BYOM_ALLOW_MODEL_CODE": "true"}

LOAD = """
    import json
    import os

    import numpy as np
    import xgboost


    def model_fn(model_dir):
        booster = xgboost.Booster()
        booster.load_model(os.path.join(model_dir, "xgboost-model.json"))
        return booster
"""

# A custom request format and a custom answer: rows of "|"-separated numbers in,
# {"fraud_scores": [...]} out.
FULL = (
    LOAD
    + """

    def input_fn(body, content_type):
        if content_type != "application/x-byom-pipe":
            raise ValueError("send application/x-byom-pipe")
        text = body.decode("utf-8")
        return np.array(
            [[float(cell) for cell in line.split("|")] for line in text.splitlines() if line],
            dtype=np.float32,
        )


    def predict_fn(data, model):
        return model.inplace_predict(data, validate_features=False)


    def output_fn(prediction, accept):
        return json.dumps({"fraud_scores": prediction.tolist()}), "application/json"

"""
)

TRANSFORM_ONLY = (
    LOAD
    + """

    def transform_fn(model, body, content_type, accept, context):
        rows = np.array(
            [[float(cell) for cell in line.split(",")] for line in body.splitlines()],
            dtype=np.float32,
        )
        scores = model.inplace_predict(rows, validate_features=False)
        assert context.system_properties["model_dir"]
        return "\\n".join(repr(float(score)) for score in scores) + "\\n", "text/csv"
"""
)

# No input_fn: the toolkit's default CSV decoder reads the body.
NO_INPUT_FN = (
    LOAD
    + """

    def predict_fn(data, model):
        rows = np.atleast_2d(data).astype(np.float32)
        return model.inplace_predict(rows, validate_features=False)


    def output_fn(prediction, accept):
        return json.dumps({"scores": prediction.tolist(), "accept": accept})

"""
)


@pytest.fixture(scope="module")
def booster():
    return train(generate(2000, seed=31, fraud_rate=0.05), rounds=8, seed=31)


def script_package(tmp_path: Path, booster: xgboost.Booster, script: str) -> Path:
    return pack(
        tmp_path / "model.tar.gz",
        {
            "xgboost-model.json": model_bytes(booster, tmp_path),
            "code/inference.py": textwrap.dedent(script).encode(),
            "code/requirements.txt": b"# nothing to install\n",
        },
    )


def invoke(server: Server, body: bytes, content_type: str, accept: str | None = None) -> bytes:
    client = server.client()
    try:
        extra = {"Accept": accept} if accept else {}
        response = client.invoke_endpoint(
            EndpointName="byom-model", ContentType=content_type, Body=body, **extra
        )
        return bytes(response["Body"].read())
    finally:
        client.close()


def test_input_predict_and_output_fn_with_a_custom_format(serve, booster, tmp_path):
    server = serve(script_package(tmp_path, booster, FULL), ALLOW)
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    assert "code/inference.py (input_fn, predict_fn, output_fn)" in server.log()
    features = rows(150, 30, seed=7)
    body = "\n".join("|".join(f"{value:.9g}" for value in row) for row in features).encode()
    answer = json.loads(invoke(server, body, "application/x-byom-pipe", "application/json"))
    want = booster.inplace_predict(features, validate_features=False)
    np.testing.assert_allclose(answer["fraud_scores"], want, atol=1e-6)
    # The script's own error is the model's error, as from the toolkit.
    client = server.client()
    try:
        with pytest.raises(client.exceptions.ModelError, match="send application/x-byom-pipe"):
            invoke(server, b"1,2\n", "text/csv")
    finally:
        client.close()


def test_a_transform_fn_only_script(serve, booster, tmp_path):
    server = serve(script_package(tmp_path, booster, TRANSFORM_ONLY), ALLOW)
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    features = rows(80, 30, seed=8)
    body = "\n".join(",".join(f"{value:.9g}" for value in row) for row in features).encode()
    status, headers, answer = http(
        f"{server.url}/invocations", body, {"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert status == 200, answer
    assert headers["Content-Type"].startswith("text/csv")
    want = booster.inplace_predict(features, validate_features=False)
    np.testing.assert_allclose(np.array(answer.split(), dtype=np.float64), want, atol=1e-6)


def test_without_input_fn_the_default_csv_decoder_reads_the_body(serve, booster, tmp_path):
    server = serve(script_package(tmp_path, booster, NO_INPUT_FN), ALLOW)
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    features = rows(40, 30, seed=9)
    body = "\n".join(",".join(f"{value:.9g}" for value in row) for row in features).encode()
    # No Accept: the script is handed the toolkit's default, application/json.
    status, headers, answer = http(f"{server.url}/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200, answer
    document = json.loads(answer)
    assert document["accept"] == "application/json"
    assert headers["Content-Type"].startswith("application/json")
    want = booster.inplace_predict(features, validate_features=False)
    np.testing.assert_allclose(document["scores"], want, atol=1e-6)
    # A type the default decoder cannot read is 415, naming input_fn.
    status, _, answer = http(
        f"{server.url}/invocations", b"1|2", {"Content-Type": "application/x-byom-pipe"}
    )
    assert status == 415 and b"input_fn" in answer


def test_a_script_is_refused_without_the_opt_in(serve, booster, tmp_path):
    server = serve(script_package(tmp_path, booster, FULL))
    status, _, body = http(f"{server.url}/ping")
    assert status == 500
    assert "BYOM_ALLOW_MODEL_CODE=true" in json.loads(body)["error"]


def test_transform_fn_with_input_fn_is_refused(serve, booster, tmp_path):
    script = (
        TRANSFORM_ONLY
        + """

    def input_fn(body, content_type):
        return body
"""
    )
    server = serve(script_package(tmp_path, booster, script), ALLOW)
    status, _, body = http(f"{server.url}/ping")
    assert status == 500
    error = json.loads(body)["error"]
    assert "transform_fn and input_fn" in error and "inference.py" in error
