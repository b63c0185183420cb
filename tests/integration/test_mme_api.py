"""SageMaker's multi-model container API, against the real model server process.

SageMaker downloads and extracts each target into /opt/ml/models/<name>/model and
then tells the container to load it; here the packages are built, packed and
extracted the same way into temporary directories.
"""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost

from model.data import LABEL, generate
from model.package import pack
from model.train import train
from tests.features import write_feature_csv
from tests.integration.test_model_server import Server

pytestmark = pytest.mark.integration

TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"


def call(
    method: str, url: str, document: Any = None, *, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    if document is not None:
        body = json.dumps(document).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(
        url, data=body, method=method, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def sagemaker_layout(root: Path, name: str, package: Path) -> Path:
    """The package as SageMaker leaves it: model.tar.gz extracted into <root>/<name>/model."""
    archive = root / f"{name}.tar.gz"
    pack(package, archive)
    target = root / name / "model"
    target.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
    return target


def booster(seed: int, flip: bool) -> xgboost.Booster:
    frame = generate(1500, seed=seed, fraud_rate=0.05)
    if flip:  # the other label, so the two models' scores clearly differ
        frame[LABEL] = 1 - frame[LABEL]
    return train(frame, rounds=6, seed=seed)


def csv_rows(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def expected(model: xgboost.Booster, body: bytes) -> np.ndarray:
    rows = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float32).to_numpy()
    return model.inplace_predict(rows, validate_features=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, dict[str, tuple[Path, xgboost.Booster]]]:
    work = tmp_path_factory.mktemp("packages")
    root = work / "opt-ml-models"
    found = {}
    for name, seed, flip in (("a1b2c3", 41, False), ("d4e5f6", 42, True), ("0789ab", 43, False)):
        model = booster(seed, flip)
        package = work / f"package-{name}"
        package.mkdir()
        model.save_model(str(package / "xgboost-model.json"))
        found[name] = (sagemaker_layout(root, name, package), model)
    return root, found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    logs = tmp_path_factory.mktemp("mme-server")
    # A multi-model endpoint has nothing in /opt/ml/model; SageMaker sets
    # SAGEMAKER_MULTI_MODEL=true (the template also sets BYOM_MULTI_MODEL).
    server = Server(
        logs / "server.log",
        logs / "no-model",
        sagemaker_style=True,
        env={"SAGEMAKER_MULTI_MODEL": "true", "BYOM_MAX_MODELS": "2"},  # as SageMaker sets it
    )
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_load_list_invoke_unload(server, models):
    _, found = models
    (a, (a_dir, a_model)), (b, (b_dir, b_model)) = list(found.items())[:2]
    status, _, body = call("GET", f"{server.url}/ping")
    assert status == 200, body  # healthy without a default model
    assert json.loads(call("GET", f"{server.url}/models")[2]) == {"models": []}

    for name, folder in ((a, a_dir), (b, b_dir)):
        status, _, body = call(
            "POST", f"{server.url}/models", {"model_name": name, "url": str(folder)}
        )
        assert status == 200, body
        assert json.loads(body) == {"modelName": name, "modelUrl": str(folder)}
    status, _, body = call("POST", f"{server.url}/models", {"model_name": a, "url": str(a_dir)})
    assert status == 409 and "already loaded" in json.loads(body)["error"]

    listed = json.loads(call("GET", f"{server.url}/models")[2])
    assert listed == {
        "models": [
            {"modelName": a, "modelUrl": str(a_dir)},
            {"modelName": b, "modelUrl": str(b_dir)},
        ]
    }
    status, _, body = call("GET", f"{server.url}/models/{b}")
    assert status == 200 and json.loads(body) == {"modelName": b, "modelUrl": str(b_dir)}

    rows = csv_rows(200, seed=7)
    answers = {}
    for name, model in ((a, a_model), (b, b_model)):
        status, headers, body = call(
            "POST",
            f"{server.url}/models/{name}/invoke",
            body=rows,
            Content_Type="text/csv",
            Accept="text/csv",
            **{TARGET_MODEL_HEADER.replace("-", "_"): f"{name}.tar.gz"},
        )
        assert status == 200, body
        assert headers["Content-Type"] == "text/csv"
        answers[name] = np.array(body.decode().split(), dtype=np.float64)
        np.testing.assert_allclose(answers[name], expected(model, rows), rtol=0, atol=1e-6)
    assert not np.allclose(answers[a], answers[b])
    # JSON in, JSON out, as /invocations answers it.
    instances = pd.read_csv(io.BytesIO(rows), header=None).to_numpy()[:5].tolist()
    status, headers, body = call(
        "POST", f"{server.url}/models/{a}/invoke", {"instances": instances}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    np.testing.assert_allclose(json.loads(body)["predictions"], answers[a][:5], atol=1e-6)
    # The body is checked as for /invocations.
    status, _, body = call(
        "POST", f"{server.url}/models/{a}/invoke", body=b"1,2\n", Content_Type="text/csv"
    )
    assert status == 400 and "expected 30 columns" in json.loads(body)["error"]

    status, _, body = call("DELETE", f"{server.url}/models/{a}")
    assert status == 200, body
    for method, path in (("POST", f"/models/{a}/invoke"), ("GET", f"/models/{a}")):
        status, _, body = call(method, server.url + path, body=rows, Content_Type="text/csv")
        assert status == 404 and "is not loaded" in json.loads(body)["error"], path
    assert call("DELETE", f"{server.url}/models/{a}")[0] == 404
    assert a_dir.is_dir()  # SageMaker's files: unloading leaves them alone
    names = [m["modelName"] for m in json.loads(call("GET", f"{server.url}/models")[2])["models"]]
    assert names == [b]


def test_least_recently_used_is_unloaded_past_max_models(server, models):
    _, found = models
    for name in found:
        call("DELETE", f"{server.url}/models/{name}")
    (a, (a_dir, _)), (b, (b_dir, _)), (c, (c_dir, c_model)) = found.items()
    for name, folder in ((a, a_dir), (b, b_dir), (c, c_dir)):
        status, _, body = call(
            "POST", f"{server.url}/models", {"model_name": name, "url": str(folder)}
        )
        assert status == 200, body
    names = [m["modelName"] for m in json.loads(call("GET", f"{server.url}/models")[2])["models"]]
    assert names == [b, c]  # BYOM_MAX_MODELS=2
    rows = csv_rows(10, seed=8)
    status, _, body = call(
        "POST", f"{server.url}/models/{c}/invoke", body=rows, Content_Type="text/csv"
    )
    assert status == 200, body
    scores = np.array(body.decode().split(), dtype=np.float64)
    np.testing.assert_allclose(scores, expected(c_model, rows), rtol=0, atol=1e-6)


def test_refused_packages_answer_with_the_reason(server, models):
    root, _ = models
    pickled = root / "pickled" / "model"
    pickled.mkdir(parents=True)
    (pickled / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    status, _, body = call(
        "POST", f"{server.url}/models", {"model_name": "pickled", "url": str(pickled)}
    )
    assert status == 400, body
    assert "refusing to load a file that may be a pickle" in json.loads(body)["error"]
    assert call("GET", f"{server.url}/models/pickled")[0] == 404

    for document in ({"url": str(pickled)}, {"model_name": "x"}, ["not", "an", "object"]):
        assert call("POST", f"{server.url}/models", document)[0] == 400, document
    status, _, body = call(
        "POST", f"{server.url}/models", {"model_name": "gone", "url": str(root / "gone")}
    )
    assert status == 400 and "gone" in json.loads(body)["error"]


def test_the_container_settings_inside_a_package_reach_the_model(server, tmp_path):
    """On AWS the settings registration writes into the package are the only ones the
    container sees: SageMaker extracts the package and POSTs /models with its folder."""
    model = booster(44, False)
    package = tmp_path / "package"
    package.mkdir()
    model.save_model(str(package / "xgboost-model.json"))
    settings = {
        "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "environment": {"SAGEMAKER_BATCH": "true"},
    }
    (package / ".byom-container.json").write_text(json.dumps(settings))
    folder = sagemaker_layout(tmp_path / "opt-ml-models", "c0ffee", package)
    status, _, body = call(
        "POST", f"{server.url}/models", {"model_name": "c0ffee", "url": str(folder)}
    )
    assert status == 200, body
    rows = csv_rows(5, seed=7)
    matrix = pd.read_csv(io.BytesIO(rows), header=None, dtype=np.float32).to_numpy()
    libsvm = "".join(
        "0 " + " ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(row)) + "\n" for row in matrix
    )
    # The XGBoost image reads libsvm (byom's defaults refuse it); SAGEMAKER_BATCH: one
    # score per line, whatever the Accept.
    status, _, body = call(
        "POST",
        f"{server.url}/models/c0ffee/invoke",
        body=libsvm.encode(),
        Content_Type="text/libsvm",
        Accept="application/json",
    )
    assert status == 200, body
    scores = [float(line) for line in body.decode().splitlines()]
    np.testing.assert_allclose(scores, expected(model, rows), rtol=1e-6)
    assert call("DELETE", f"{server.url}/models/c0ffee")[0] == 200
