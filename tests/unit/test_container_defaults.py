"""Container settings per registry target: the schema of the settings a package
holds (`.byom-container.json`), the serving
defaults each SageMaker image brings, libsvm bodies, and the environment an
inference script sees."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from model.codecs import NotAcceptable, UnsupportedFormat
from model.data import generate
from model.flavors.base import BadRequest
from model.inference_script import load_script
from model.libsvm import parse_libsvm
from model.package import load_package, pack
from model.server.container_settings import (
    MAX_BYTES,
    MEMBER,
    ContainerSettings,
    ContainerSettingsError,
    parse_settings,
    read_settings,
)
from model.server.containers import BYOM, SCIKIT_LEARN, XGBOOST, defaults_for, repository_of
from model.server.invoke import score
from model.server.multi_model import ModelCache, TargetMissing, TargetUnloadable
from model.train import train

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


# --- the table ------------------------------------------------------------------------


def test_the_image_repository_picks_the_defaults():
    assert defaults_for(XGBOOST_IMAGE) is XGBOOST
    assert defaults_for(SKLEARN_IMAGE) is SCIKIT_LEARN
    assert defaults_for("public.ecr.aws/acme/sagemaker-xgboost@sha256:abc") is XGBOOST
    assert defaults_for("localhost:5000/sagemaker-scikit-learn") is SCIKIT_LEARN
    for other in (None, "", "123.dkr.ecr.eu-west-1.amazonaws.com/my-xgboost:1", "xgboost"):
        assert defaults_for(other) is BYOM
    assert repository_of("a.b/c/Sagemaker-XGBoost:1.7-1") == "sagemaker-xgboost"


# --- container.json -------------------------------------------------------------------


def test_container_json_is_read_strictly():
    document = {"image": XGBOOST_IMAGE, "environment": {"SAGEMAKER_PROGRAM": "serve.py"}}
    settings = parse_settings(json.dumps(document).encode())
    assert settings.image == XGBOOST_IMAGE
    assert dict(settings.environment) == {"SAGEMAKER_PROGRAM": "serve.py"}
    assert parse_settings(b"{}") == ContainerSettings()
    # What the API writes for a model without an Image.
    assert parse_settings(b'{"image": null, "environment": {}}') == ContainerSettings()
    refused = {
        b"[]": "must be an object",
        b"{nope": "not JSON",
        b"\xff": "not JSON",
        b'{"image": "x", "extra": 1}': "unknown key 'extra'",
        b'{"image": 3}': "image must be",
        b'{"image": ""}': "image must be",
        b'{"image": "a\\nb"}': "image must be",
        json.dumps({"image": "x" * 256}).encode(): "image must be",
        b'{"environment": []}': "environment must be an object",
        b'{"environment": {"1A": "x"}}': "is not a variable name",
        b'{"environment": {"A-B": "x"}}': "is not a variable name",
        b'{"environment": {"A": 1}}': "A must be a string",
        json.dumps({"environment": {"A": "x" * 10241}}).encode(): "at most 10240",
        json.dumps({"environment": {f"V{i}": "" for i in range(121)}}).encode(): "at most 120",
        json.dumps({"environment": {"A" * 1025: "x"}}).encode(): "is not a variable name",
        b" " * (MAX_BYTES + 1): "over",
        b"[" * 100_000: "not JSON",
    }
    for data, reason in refused.items():
        with pytest.raises(ContainerSettingsError, match=reason):
            parse_settings(data)
    # SageMaker's limits themselves are allowed: a model's 100 variables, a transform
    # job's 16 (values up to 10240 characters) and the 4 batch variables.
    widest = {f"V{i}": "\U0001f600" * 10240 for i in range(119)} | {"A" * 1024: ""}
    data = json.dumps({"image": "x" * 255, "environment": widest}).encode()
    assert len(parse_settings(data).environment) == 120


def test_the_settings_are_read_from_the_package_folder(tmp_path):
    assert read_settings(tmp_path) == ContainerSettings()  # none: byom's defaults
    (tmp_path / MEMBER).write_text(json.dumps({"image": XGBOOST_IMAGE}))
    assert read_settings(tmp_path) == ContainerSettings(XGBOOST_IMAGE)
    (tmp_path / MEMBER).write_bytes(b" " * (MAX_BYTES + 1))
    with pytest.raises(ContainerSettingsError, match="is over"):
        read_settings(tmp_path)
    (tmp_path / MEMBER).unlink()
    (tmp_path / MEMBER).mkdir()
    with pytest.raises(ContainerSettingsError, match="plain file"):
        read_settings(tmp_path)


# --- libsvm ---------------------------------------------------------------------------


def test_libsvm_rows_are_dense_with_missing_values_as_nan():
    rows = parse_libsvm(b"1 1:0.5 3:2\n0 2:-1e2\r\n", 4)
    expected = np.array([[0.5, np.nan, 2, np.nan], [np.nan, -100, np.nan, np.nan]], np.float32)
    np.testing.assert_array_equal(rows, expected)
    # Index 0 anywhere makes the whole body 0-based, as the XGBoost container shifts.
    np.testing.assert_array_equal(parse_libsvm(b"0:1 2:3", None), [[1, np.nan, 3]])
    np.testing.assert_array_equal(parse_libsvm(b"1:1\t2:3\n", None), [[1, 3]])
    assert parse_libsvm(b"1\n0\n", 3).shape == (2, 3)  # labels only: every value missing


def test_libsvm_refusals_name_the_line():
    for body, reason in {
        b"": "empty",
        b"1:1\n\n2:2": "line 2 is empty",
        b"1:1 x:2": "line 1, 'x:2': expected index:value",
        b"1:1 2": "line 1, '2': expected index:value",
        b"1:1 1:2": "named twice",
        b"1:nan": "not a number",
        b"1:1e39": "beyond the float32 range",
        b"1:\xff": "not a number",
        b"\xd9\xa1:1": "expected index:value",  # an Arabic-Indic one is not a digit here
        b"5:1": "past the model's 4 features",
        b"abc 1:1": "label",
        b"1 0": "line 1, '0': expected index:value",
        b"1\n": "no index:value pairs",
    }.items():
        with pytest.raises(BadRequest, match=reason):
            parse_libsvm(body, 4 if b"5:1" in body else None)


# --- serving defaults on a real flavor ----------------------------------------------


@pytest.fixture(scope="module")
def xgboost_package(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("xgb")
    train(generate(500, seed=3, fraud_rate=0.1), rounds=3).save_model(
        str(folder / "xgboost-model.json")
    )
    return folder


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(3, 30)).astype(np.float32)


def csv_of(rows: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()


def libsvm_of(rows: np.ndarray) -> bytes:
    return "".join(
        "0 " + " ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(row)) + "\n" for row in rows
    ).encode()


def test_byom_defaults_refuse_a_missing_content_type(xgboost_package, rows):
    model = load_package(xgboost_package)
    with pytest.raises(UnsupportedFormat, match="cannot read ''"):
        score(model, csv_of(rows), "", None)
    with pytest.raises(UnsupportedFormat, match="cannot read 'text/libsvm'"):
        score(model, libsvm_of(rows), "text/libsvm", None)
    body, answer = score(model, csv_of(rows), "text/csv", None)
    assert answer == "text/csv" and len(body.splitlines()) == 3


def test_the_xgboost_image_reads_libsvm_by_default_and_answers_csv(xgboost_package, rows):
    model = load_package(xgboost_package)
    expected = model.predict(rows).tolist()
    xgb = ContainerSettings(XGBOOST_IMAGE)
    body, answer = score(model, libsvm_of(rows), "", None, xgb)  # no Content-Type: libsvm
    assert answer == "text/csv"
    assert body == ("\n".join(map(str, expected)) + "\n").encode()
    for content_type in ("text/libsvm", "text/x-libsvm", "libsvm"):
        assert score(model, libsvm_of(rows), content_type, "*/*", xgb) == (body, answer)
    assert score(model, csv_of(rows), "text/csv", None, xgb) == (body, answer)
    body, answer = score(model, csv_of(rows), "text/csv", "application/json", xgb)
    assert json.loads(body) == {"predictions": [{"score": value} for value in expected]}
    with pytest.raises(NotAcceptable):
        score(model, csv_of(rows), "text/csv", "text/html", xgb)
    # A transform job sets SAGEMAKER_BATCH: one prediction per line, whatever the Accept.
    batch = ContainerSettings(XGBOOST_IMAGE, {"SAGEMAKER_BATCH": "true"})
    body, answer = score(model, csv_of(rows), "text/csv", "application/json", batch)
    assert answer == "application/json"
    assert body == ("\n".join(map(str, expected)) + "\n").encode()
    # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT replaces the image's default Accept.
    chosen = ContainerSettings(
        XGBOOST_IMAGE, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}
    )
    assert score(model, csv_of(rows), "text/csv", None, chosen)[1] == "application/json"


def test_the_scikit_learn_image_reads_and_answers_json_by_default(xgboost_package, rows):
    model = load_package(xgboost_package)
    sklearn = ContainerSettings(SKLEARN_IMAGE)
    body, answer = score(model, json.dumps(rows.tolist()).encode(), "", None, sklearn)
    assert answer == "application/json"
    np.testing.assert_allclose(json.loads(body), model.predict(rows), rtol=1e-6)
    body, answer = score(model, csv_of(rows), "text/csv", "*/*", sklearn)
    assert answer == "application/json" and isinstance(json.loads(body), list)
    with pytest.raises(UnsupportedFormat):
        score(model, libsvm_of(rows), "text/libsvm", None, sklearn)


# --- the environment a script sees --------------------------------------------------

SCRIPT = """
import os
from os import environ, getenv

AT_IMPORT = os.environ.get("BYOM_TEST_GREETING")

def model_fn(model_dir):
    return {"program": __file__.rsplit("/", 1)[-1], "at_import": AT_IMPORT}

def predict_fn(data, model):
    return {
        **model,
        "at_call": getenv("BYOM_TEST_GREETING"),
        "batch": environ.get("SAGEMAKER_BATCH"),
        "path": os.path.join("a", "b"),
    }
"""


@pytest.fixture
def script_package(tmp_path: Path) -> Path:
    package = tmp_path / "package"
    (package / "code").mkdir(parents=True)
    for name in ("inference.py", "other.py"):
        (package / "code" / name).write_text(textwrap.dedent(SCRIPT))
    return package


def test_a_script_sees_its_models_environment_and_the_process_does_not(script_package):
    environment = {
        "BYOM_TEST_GREETING": "hello",
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_PROGRAM": "other.py",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
    }
    model = load_script(script_package, allow_code=True, environment=environment)
    assert model is not None and model.default_accept == "text/csv"
    body, _ = model.handle(b"[1]", "application/json", "application/json")
    assert json.loads(body) == {
        "program": "other.py",
        "at_import": "hello",
        "at_call": "hello",
        "batch": "true",
        "path": "a/b",
    }
    assert "BYOM_TEST_GREETING" not in os.environ
    plain = load_script(script_package, allow_code=True)
    assert plain is not None and plain.default_accept == "application/json"
    body, _ = plain.handle(b"[1]", "application/json", None)
    assert json.loads(body)["program"] == "inference.py"
    assert json.loads(body)["at_call"] is None


# --- the cache reads the settings inside the target's package --------------------------


def packed_with(package: Path, settings: bytes | None, out: Path) -> bytes:
    """`package` as a model.tar.gz, with `settings` as its container settings member."""
    folder = out.parent / f"{out.name}-folder"
    shutil.copytree(package, folder)
    if settings is not None:
        (folder / MEMBER).write_bytes(settings)
    pack(folder, out)
    return out.read_bytes()


def test_the_cache_loads_a_target_with_the_settings_its_package_holds(script_package, tmp_path):
    settings = {"image": SKLEARN_IMAGE, "environment": {"BYOM_TEST_GREETING": "hi"}}
    objects = {
        "s3://b/models/s/1/model.tar.gz": packed_with(
            script_package, json.dumps(settings).encode(), tmp_path / "s.tar.gz"
        ),
        "s3://b/models/plain/1/model.tar.gz": packed_with(
            script_package, None, tmp_path / "plain.tar.gz"
        ),
        "s3://b/models/bad/1/model.tar.gz": packed_with(
            script_package, b'{"environment": {"A": 1}}', tmp_path / "bad.tar.gz"
        ),
    }

    def fetch(url: str, out: Path) -> None:
        if url not in objects:
            raise TargetMissing(url)
        out.write_bytes(objects[url])

    cache = ModelCache("s3://b/models", tmp_path / "cache", 4, allow_code=True, fetch=fetch)
    model, container = cache.served("s/1/model.tar.gz")
    assert container.image == SKLEARN_IMAGE
    assert json.loads(score(model, b"[1]", "", None, container)[0])["at_call"] == "hi"
    model, container = cache.served("plain/1/model.tar.gz")
    assert container == ContainerSettings()
    with pytest.raises(
        TargetUnloadable, match=r"bad/1/model\.tar\.gz'?: \.byom-container\.json: environment: A"
    ):
        cache.get("bad/1/model.tar.gz")
    assert cache.loaded() == ["s/1/model.tar.gz", "plain/1/model.tar.gz"]
    # SageMaker's multi-model API hands over the folder it extracted: the same settings.
    extracted = tmp_path / "extracted"
    shutil.copytree(script_package, extracted)
    (extracted / MEMBER).write_text(json.dumps(settings))
    cache.add("added", extracted)
    found = cache.peek_served("added")
    assert found is not None and found[2].image == SKLEARN_IMAGE
    assert json.loads(score(found[0], b"[1]", "", None, found[2])[0])["at_call"] == "hi"
    shutil.rmtree(tmp_path / "cache")


def test_script_mode_reads_a_missing_content_type_as_json_on_both_images(script_package):
    model = load_script(script_package, allow_code=True)
    assert model is not None
    for image in (XGBOOST_IMAGE, SKLEARN_IMAGE):
        body, answer = score(model, b"[1]", "", None, ContainerSettings(image))
        assert answer == "application/json" and json.loads(body)["program"] == "inference.py"
    with pytest.raises(UnsupportedFormat):  # byom's own rule: the script's input_fn gets ""
        score(model, b"[1]", "", None)
