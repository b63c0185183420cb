"""A target's container settings, through a real model server process reading a real
(local) S3: the image's serving defaults and the environment its script sees.

The packages sit in the registry layout, `models/<name>/<version>/model.tar.gz`,
holding `.byom-container.json` as the SageMaker API writes it into the package
when it registers a model for a transform job (model/server/container_settings.py).
"""

from __future__ import annotations

import http.client
import json
import shutil
import textwrap
from typing import Any

import boto3
import joblib
import numpy as np
import pytest
import xgboost
from sklearn import tree
from sklearn.datasets import load_iris

from model.data import generate
from model.package import pack
from model.server.container_settings import MEMBER
from model.train import train
from tests.integration.test_model_server import Server

pytestmark = pytest.mark.integration

BUCKET = "container-settings"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
OTHER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-container:1"
# SageMaker's Iris example's script: model_fn only, the container predicts.
MODEL_FN_ONLY = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
SCRIPT = """
import os

SEEN_AT_IMPORT = os.environ.get("GREETING")

def model_fn(model_dir):
    return SEEN_AT_IMPORT

def transform_fn(model, body, content_type, accept):
    seen = {
        "at_import": model,
        "at_call": os.getenv("GREETING"),
        "batch": os.environ.get("SAGEMAKER_BATCH"),
        "strategy": os.environ.get("SAGEMAKER_BATCH_STRATEGY"),
        "content_type": content_type,
        "accept": accept,
        "script": __file__.rsplit("/", 1)[-1],
    }
    return json.dumps(seen), "application/json"

import json
"""


def _iris_classifier() -> tree.DecisionTreeClassifier:
    features, labels = load_iris(return_X_y=True)
    return tree.DecisionTreeClassifier(random_state=0).fit(features, labels)


@pytest.fixture(scope="module")
def booster() -> xgboost.Booster:
    return train(generate(800, seed=5, fraud_rate=0.1), rounds=4, seed=5)


@pytest.fixture(scope="module")
def registry(moto_endpoint, booster, tmp_path_factory) -> str:
    """Packages, holding their container settings, under s3://<bucket>/models/."""
    work = tmp_path_factory.mktemp("registry")
    flavor = work / "flavor"
    flavor.mkdir()
    booster.save_model(str(flavor / "xgboost-model.json"))
    script = work / "script"
    (script / "code").mkdir(parents=True)
    (script / "code" / "serve.py").write_text(textwrap.dedent(SCRIPT))
    iris = work / "iris"
    (iris / "code").mkdir(parents=True)
    (iris / "code" / "iris.py").write_text(textwrap.dedent(MODEL_FN_ONLY))
    joblib.dump(_iris_classifier(), iris / "model.joblib")
    folders = {"flavor": flavor, "script": script, "iris": iris}
    batch = {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "6",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4",
    }
    targets: dict[str, tuple[str, dict[str, object] | bytes | None]] = {
        "plain/1": ("flavor", None),
        "xgb/1": ("flavor", {"image": XGBOOST_IMAGE}),
        "xgb-batch/1": ("flavor", {"image": XGBOOST_IMAGE, "environment": batch}),
        "sklearn/1": ("flavor", {"image": SKLEARN_IMAGE}),
        "script/1": (
            "script",
            {"image": SKLEARN_IMAGE, "environment": {"SAGEMAKER_PROGRAM": "serve.py", **batch}},
        ),
        "script-env/1": (
            "script",
            {"environment": {"SAGEMAKER_PROGRAM": "serve", "GREETING": "hello"}},
        ),
        "script-no-program/1": ("script", None),
        "bad/1": ("flavor", b'{"image": "x", "Environment": {}}'),
        "iris-sklearn/1": (
            "iris",
            {"image": SKLEARN_IMAGE, "environment": {"SAGEMAKER_PROGRAM": "iris.py"}},
        ),
        "iris-other/1": (
            "iris",
            {"image": OTHER_IMAGE, "environment": {"SAGEMAKER_PROGRAM": "iris.py"}},
        ),
    }
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, **_client_credentials())
    s3.create_bucket(Bucket=BUCKET)
    for target, (package, container) in targets.items():
        folder = work / "targets" / target
        shutil.copytree(folders[package], folder)
        if container is not None:
            body = container if isinstance(container, bytes) else json.dumps(container).encode()
            (folder / MEMBER).write_bytes(body)
        archive = folder.with_suffix(".tar.gz")
        pack(folder, archive)
        s3.put_object(Bucket=BUCKET, Key=f"models/{target}/model.tar.gz", Body=archive.read_bytes())
    return f"s3://{BUCKET}/models/"


def _client_credentials() -> dict[str, Any]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


@pytest.fixture(scope="module")
def server(registry, moto_endpoint, tmp_path_factory):
    logs = tmp_path_factory.mktemp("container-settings-server")
    server = Server(
        logs / "server.log",
        logs / "no-model",
        env={
            "BYOM_MODEL_DATA_PREFIX": registry,
            "BYOM_ALLOW_MODEL_CODE": "true",
            "AWS_ENDPOINT_URL": moto_endpoint,
            **CREDENTIALS,
        },
    )
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def invoke(server: Server, target: str, body: bytes, **headers: str) -> tuple[int, str, bytes]:
    """POST /invocations with exactly these headers: no Content-Type unless given."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sent = {TARGET_MODEL_HEADER: f"{target}/model.tar.gz"}
        sent |= {name.replace("_", "-"): value for name, value in headers.items()}
        connection.request("POST", "/invocations", body=body, headers=sent)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return generate(4, seed=9, fraud_rate=0.5).iloc[:, :30].to_numpy(dtype=np.float32)


def csv_of(rows: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def libsvm_of(rows: np.ndarray) -> bytes:
    lines = (" ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(row)) for row in rows)
    return ("\n".join(f"0 {line}" for line in lines) + "\n").encode()


def scores(booster: xgboost.Booster, rows: np.ndarray) -> list[float]:
    values: list[float] = booster.inplace_predict(rows, validate_features=False).tolist()
    return values


def test_byom_defaults_without_container_json(server, rows):
    status, _, body = invoke(server, "plain/1", csv_of(rows))
    assert status == 415 and b"cannot read ''" in body
    status, content_type, body = invoke(server, "plain/1", csv_of(rows), Content_Type="text/csv")
    assert status == 200 and content_type.startswith("text/csv")


def test_the_xgboost_image_reads_libsvm_without_a_content_type(server, booster, rows):
    expected = scores(booster, rows)
    lines = ("\n".join(map(str, expected)) + "\n").encode()
    status, content_type, body = invoke(server, "xgb/1", libsvm_of(rows))
    assert (status, body) == (200, lines), body
    assert content_type.startswith("text/csv")
    status, _, body = invoke(server, "xgb/1", libsvm_of(rows), Content_Type="text/libsvm")
    assert (status, body) == (200, lines)
    status, _, body = invoke(
        server, "xgb/1", csv_of(rows), Content_Type="text/csv", Accept="application/json"
    )
    assert json.loads(body) == {"predictions": [{"score": value} for value in expected]}
    # In a transform job (SAGEMAKER_BATCH), one prediction per line, whatever the Accept.
    status, content_type, body = invoke(
        server, "xgb-batch/1", csv_of(rows), Content_Type="text/csv", Accept="application/json"
    )
    assert (status, body) == (200, lines)
    assert content_type.startswith("application/json")


def test_the_scikit_learn_image_reads_json_without_a_content_type(server, booster, rows):
    status, content_type, body = invoke(server, "sklearn/1", json.dumps(rows.tolist()).encode())
    assert status == 200 and content_type.startswith("application/json"), body
    np.testing.assert_allclose(json.loads(body), scores(booster, rows), rtol=1e-6)
    status, _, body = invoke(server, "sklearn/1", libsvm_of(rows), Content_Type="text/libsvm")
    assert status == 415, body


def test_a_script_sees_its_environment_and_program(server):
    status, _, body = invoke(server, "script/1", b"[1]")
    assert status == 200, body
    assert json.loads(body) == {
        "at_import": None,
        "at_call": None,
        "batch": "true",
        "strategy": "MULTI_RECORD",
        "content_type": "application/json",  # script mode's missing type
        "accept": "application/json",
        "script": "serve.py",
    }
    status, _, body = invoke(server, "script-env/1", b"x", Content_Type="text/plain")
    seen = json.loads(body)
    assert (seen["at_import"], seen["at_call"], seen["batch"]) == ("hello", "hello", None)
    assert seen["content_type"] == "text/plain"
    # Without SAGEMAKER_PROGRAM the package's serve.py is not its inference script.
    status, _, body = invoke(server, "script-no-program/1", b"1", Content_Type="text/csv")
    assert status == 400 and b"cannot be loaded" in body, body


def test_a_container_json_that_breaks_the_schema_refuses_the_target(server):
    status, _, body = invoke(server, "bad/1", b"1", Content_Type="text/csv")
    assert status == 400, body
    assert b"bad/1/model.tar.gz" in body and b"unknown key 'Environment'" in body
    assert b".byom-container.json" in body


def test_execution_parameters_as_the_framework_containers_answer(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/execution-parameters")
        response = connection.getresponse()
        parameters = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 200
    assert set(parameters) == {"MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"}
    assert parameters["BatchStrategy"] == "MULTI_RECORD" and parameters["MaxPayloadInMB"] == 6
    assert parameters["MaxConcurrentTransforms"] >= 1


def test_a_script_with_only_model_fn_predicts_as_its_framework_container(server):
    """The scikit-learn image's container predicts with `model.predict` for a script
    that defines only model_fn (SageMaker's Iris notebook); on another image the
    toolkit has no default predict_fn and the target is refused."""
    features, _ = load_iris(return_X_y=True)
    rows = features[::10]
    body = "".join(",".join(map(str, row)) + "\n" for row in rows).encode()
    status, content_type, answer = invoke(server, "iris-sklearn/1", body, Content_Type="text/csv")
    assert status == 200, answer
    assert content_type.startswith("application/json")
    expected = _iris_classifier().predict(rows.astype(np.float32)).tolist()
    assert answer == json.dumps(expected).encode()
    status, _, answer = invoke(server, "iris-other/1", body, Content_Type="text/csv")
    assert status == 400 and b"defines neither predict_fn nor transform_fn" in answer, answer
