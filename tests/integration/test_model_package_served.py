"""A model.tar.gz, shaped as SageMaker's ModelDataUrl, served by the real model server."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xgboost

from model.data import generate
from model.flavors.xgboost_flavor import XGBoostFlavor
from model.train import train
from tests.integration.test_model_server import Server, http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def booster():
    return train(generate(2000, seed=21, fraud_rate=0.05), rounds=8, seed=21)


def pack(out: Path, files: dict[str, bytes]) -> Path:
    """A model.tar.gz with `files` at its root, as SageMaker training jobs write it."""
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def model_bytes(booster: xgboost.Booster, tmp_path: Path) -> bytes:
    # XGBoost picks the format from the extension: save as JSON, ship under any name.
    path = tmp_path / "xgboost-model.json"
    booster.save_model(str(path))
    return path.read_bytes()


def rows(count: int, columns: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, columns)).astype(np.float32)


def invoke_csv(server: Server, body: np.ndarray) -> bytes:
    text = "\n".join(",".join(f"{value:.9g}" for value in row) for row in body) + "\n"
    client = server.client()
    try:
        return client.invoke_endpoint(
            EndpointName="byom-model", ContentType="text/csv", Body=text.encode()
        )["Body"].read()
    finally:
        client.close()


def test_a_tar_gz_is_served_with_xgboost_predictions(serve, booster, tmp_path):
    package = pack(
        tmp_path / "model.tar.gz",
        {"xgboost-model.json": model_bytes(booster, tmp_path), "code/requirements.txt": b""},
    )
    server = serve(package, {"BYOM_PACKAGE_WORKDIR": str(tmp_path / "work")})
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    features = rows(200, 30, seed=3)
    answer = invoke_csv(server, features)
    want = booster.inplace_predict(features, validate_features=False)
    np.testing.assert_allclose(np.array(answer.split(), dtype=np.float64), want, atol=1e-6)
    assert "xgboost-model.json (30 features)" in server.log()


def test_a_manifest_drops_columns_labels_and_limits_rows(serve, booster, tmp_path):
    manifest = b"""
[input]
columns = ["id", %s, "Class"]
drop = ["id", "Class"]
[output]
columns = ["probability", "label"]
threshold = 0.5
classes = ["legit", "fraud"]
[batch]
max_rows = 50
""" % ", ".join(f'"f{i}"' for i in range(30)).encode()
    package = pack(
        tmp_path / "model.tar.gz",
        {"xgboost-model.json": model_bytes(booster, tmp_path), "byom.toml": manifest},
    )
    server = serve(package)
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    assert "32 input columns, dropping id, Class" in server.log()
    features = rows(40, 30, seed=4)
    features[:3] *= 50  # some rows far out, so both labels appear
    wide = np.column_stack([np.arange(40), features, np.zeros(40)]).astype(np.float32)
    lines = invoke_csv(server, wide).decode().splitlines()
    want = booster.inplace_predict(features, validate_features=False)
    got = np.array([float(line.split(",")[0]) for line in lines])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert [line.split(",")[1] for line in lines] == [
        "fraud" if p >= 0.5 else "legit" for p in want
    ]
    client = server.client()
    try:
        with pytest.raises(client.exceptions.ValidationError, match="max_rows"):
            invoke_csv(server, np.zeros((51, 32), dtype=np.float32))
        with pytest.raises(client.exceptions.ModelError, match="expected 32 columns"):
            invoke_csv(server, features)
    finally:
        client.close()


def test_a_refused_package_fails_ping_with_the_reason(serve, tmp_path):
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("xgboost-model.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    server = serve(path)
    status, _, body = http(f"{server.url}/ping")
    assert status == 500
    assert b"member 'xgboost-model.json'" in body and b"symbolic link" in body


def _detects_sagemaker_name() -> bool:
    """Whether the xgboost flavor picks up a file named `xgboost-model`."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "xgboost-model").write_bytes(b"{}")
        try:
            found = XGBoostFlavor().artifact(Path(folder))
        except Exception:
            return False
        return found is not None and found.name == "xgboost-model"


@pytest.mark.skipif(
    not _detects_sagemaker_name(),
    reason="the xgboost flavor does not detect SageMaker's bare 'xgboost-model' file yet",
)
def test_sagemaker_builtin_xgboost_layout(serve, booster, tmp_path):
    package = pack(tmp_path / "model.tar.gz", {"xgboost-model": model_bytes(booster, tmp_path)})
    server = serve(package)
    assert http(f"{server.url}/ping")[0] == 200, server.log()
    features = rows(100, 30, seed=5)
    want = booster.inplace_predict(features, validate_features=False)
    answer = invoke_csv(server, features)
    np.testing.assert_allclose(np.array(answer.split(), dtype=np.float64), want, atol=1e-6)
