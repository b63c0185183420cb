"""Several models side by side, through the real local stack.

Models are published to the registry in the bucket with `python -m model.publish`;
uploads choose one with S3 metadata `byom-model` or by their folder under
`input/`; the model server loads each on first use as a multi-model endpoint
does (`TargetModel`), and keeps at most two loaded, so the third one used makes
it unload and later reload another.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import xgboost

from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from model.data import LABEL, generate
from model.publish import publish
from model.train import train
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item, keys_under

pytestmark = pytest.mark.integration

KIB = 1024


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        # Small files go inline through the scheduler, the larger one through Batch,
        # in several chunks.
        settings={"BYOM_INLINE_MAX_BYTES": str(64 * KIB), "BYOM_CHUNK_BYTES": str(256 * KIB)},
        model_server_env={"BYOM_MAX_MODELS": "2"},
    )
    with LocalStack(config) as stack:
        yield stack


def booster(seed: int, flip: bool = False) -> xgboost.Booster:
    frame = generate(2000, seed=seed, fraud_rate=0.05)
    if flip:  # the other label: a model whose scores are clearly not the first's
        frame[LABEL] = 1 - frame[LABEL]
    return train(frame, rounds=8, seed=seed)


def package(booster: xgboost.Booster, folder: Path) -> Path:
    folder.mkdir(parents=True)
    booster.save_model(str(folder / "xgboost-model.json"))
    return folder


def publish_cli(
    stack: LocalStack, path: Path, name: str, version: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "model.publish", str(path), "--name", name]
    command += ["--version", version, "--bucket", stack.config.bucket]
    return subprocess.run(
        command, env=stack.base_env(), cwd=REPO, capture_output=True, text=True, timeout=120
    )


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def predictions(model: xgboost.Booster, data: bytes) -> np.ndarray:
    frame = pd.read_csv(io.BytesIO(data), header=None, dtype=np.float32)
    return model.inplace_predict(frame.to_numpy(), validate_features=False)


def test_uploads_choose_their_models(stack, model_dir, tmp_path):
    s3, sqs, dynamodb = stack.client("s3"), stack.client("sqs"), stack.client("dynamodb")
    bucket = stack.config.bucket
    done_queue = stack.subscribe_done_events("side-by-side-done")
    models = {
        ("fraud", "2"): booster(31),
        ("fraud", "10"): booster(32),  # the latest: 10 comes after 2 in natural order
        ("inverse", "1"): booster(33, flip=True),
    }
    default = xgboost.Booster()
    default.load_model(str(model_dir / "xgboost-model.json"))
    for (name, version), model in models.items():
        path = package(model, tmp_path / f"{name}-{version}")
        if name == "inverse":
            result = publish_cli(stack, path, name, version)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == f"s3://{bucket}/models/{name}/{version}/model.tar.gz"
        else:
            publish(path, name, version, bucket=bucket, s3=s3)
    # A version is published once.
    again = publish_cli(stack, tmp_path / "fraud-2", "fraud", "2")
    assert again.returncode == 1 and "versions are immutable" in again.stderr

    # A broken package is refused before anything is uploaded.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "xgboost-model.json").write_bytes(b'{"learner": not json')
    refused = publish_cli(stack, broken, "broken", "1")
    assert refused.returncode == 1, refused.stdout
    assert "refused:" in refused.stderr
    assert keys_under(s3, bucket, "models/broken/") == []

    uploads = {
        # key: (body, metadata, the model it should be scored by, name, version)
        "input/latest.csv": (feature_csv(100, 1), {"byom-model": "fraud"}, "fraud", "10"),
        "input/pinned.csv": (feature_csv(120, 2), {"byom-model": "fraud:2"}, "fraud", "2"),
        "input/inverse/big.csv": (feature_csv(3000, 3), {}, "inverse", "1"),
        "input/plain.csv": (feature_csv(80, 4), {}, None, None),
        # a folder that is not a model is only a folder
        "input/not-a-model/rows.csv": (feature_csv(50, 5), {}, None, None),
    }
    assert len(uploads["input/inverse/big.csv"][0]) > 2 * 256 * KIB  # Batch, several chunks
    assert all(len(body) < 64 * KIB for key, (body, *_) in uploads.items() if "big" not in key)
    unknown = "input/unknown.csv"
    for key, (body, metadata, *_) in uploads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    s3.put_object(
        Bucket=bucket, Key=unknown, Body=feature_csv(10, 6), Metadata={"byom-model": "nosuch"}
    )
    uris = {f"s3://{bucket}/{key}" for key in [*uploads, unknown]}
    try:
        details = collect_done_events(sqs, done_queue, uris, timeout=240)
    except TimeoutError:
        print(stack.logs())
        raise

    for key, (body, _, name, version) in uploads.items():
        detail = details[f"s3://{bucket}/{key}"]
        assert detail["status"] == "SUCCEEDED", (key, detail, stack.logs())
        assert (detail["model_name"], detail["model_version"]) == (name, version), key
        output = s3.get_object(
            Bucket=bucket, Key=detail["output_uri"].removeprefix(f"s3://{bucket}/")
        )["Body"].read()
        got = np.array(output.decode().split(), dtype=np.float64)
        model = default if name is None else models[(name, version)]
        np.testing.assert_allclose(got, predictions(model, body), rtol=0, atol=1e-6)
        item = job_item(dynamodb, stack.config.jobs_table, detail["job_id"])
        assert (item.get("model_name"), item.get("model_version")) == (name, version), key
    assert details[f"s3://{bucket}/input/inverse/big.csv"]["chunks"] > 1
    assert job_item(
        dynamodb, stack.config.jobs_table, details[f"s3://{bucket}/input/inverse/big.csv"]["job_id"]
    ).get("batch_job_id")

    failed = details[f"s3://{bucket}/{unknown}"]
    assert failed["status"] == "FAILED" and failed["output_uri"] is None
    assert "model 'nosuch' is not in the model registry" in failed["error"]
    assert f"s3://{bucket}/models/" in failed["error"]

    # Three models used, two kept: one was unloaded (and reloaded if asked again).
    assert "unloaded target model" in stack.services["model-server"].tail(400)

    # The endpoint itself answers a missing target model as SageMaker does.
    runtime = boto3.client(
        "sagemaker-runtime",
        region_name=stack.config.region,
        endpoint_url=f"http://127.0.0.1:{stack.model_port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(runtime.exceptions.ValidationError) as missing:
        runtime.invoke_endpoint(
            EndpointName=stack.config.endpoint_name,
            TargetModel="nosuch/1/model.tar.gz",
            ContentType="text/csv",
            Body=feature_csv(1, 7),
        )
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert f"s3://{bucket}/models/nosuch/1/model.tar.gz" in str(missing.value)


def test_a_model_of_another_width_takes_its_own_rows(stack, tmp_path):
    """publish records the model's width; ingest holds a job's rows to the model it
    chose, so a 4-feature LightGBM model sits beside the 30-feature default."""
    from tests.unit.test_model_flavors import classes, lightgbm_booster

    s3, sqs = stack.client("s3"), stack.client("sqs")
    bucket = stack.config.bucket
    done_queue = stack.subscribe_done_events("width-done")
    narrow = lightgbm_booster(2)
    folder = tmp_path / "narrow"
    folder.mkdir()
    narrow.save_model(str(folder / "model.txt"))
    publish(folder, "narrow", "1", bucket=bucket, s3=s3)
    head = s3.head_object(Bucket=bucket, Key="models/narrow/1/model.tar.gz")
    assert head["Metadata"]["byom-feature-count"] == "4"

    rows = classes(2, rows=400, seed=21)[0]
    good = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows).encode()
    s3.put_object(Bucket=bucket, Key="input/narrow/rows.csv", Body=good)
    # Thirty columns are the default model's width, not this model's.
    wide = feature_csv(5, seed=22)
    s3.put_object(Bucket=bucket, Key="input/narrow/wide.csv", Body=wide)
    uris = {f"s3://{bucket}/input/narrow/{name}" for name in ("rows.csv", "wide.csv")}
    details = collect_done_events(sqs, done_queue, uris, timeout=120)

    scored = details[f"s3://{bucket}/input/narrow/rows.csv"]
    assert scored["status"] == "SUCCEEDED", scored
    assert (scored["model_name"], scored["model_version"]) == ("narrow", "1")
    output = s3.get_object(Bucket=bucket, Key=scored["output_uri"].split("/", 3)[3])
    served = np.array(output["Body"].read().split(), dtype=np.float64)
    np.testing.assert_allclose(served, narrow.predict(rows), rtol=0, atol=1e-6)
    refused = details[f"s3://{bucket}/input/narrow/wide.csv"]
    assert refused["status"] == "FAILED"
    assert "line 1" in refused["error"] and "expected 4 columns, found 30" in refused["error"]


def test_the_default_model_setting_chooses_for_uploads_that_name_none(stack, tmp_path, monkeypatch):
    """A multi-model endpoint has no model of its own: BYOM_DEFAULT_MODEL names the
    registry model of uploads that choose none (infra/deploy.sh --multi-model)."""
    from services.ingest.ingest import InputError, Upload, choose_model
    from shared import aws
    from shared.model_registry import ModelRef
    from shared.settings import get_settings

    bucket = stack.config.bucket
    publish(
        package(booster(41), tmp_path / "house"), "house", "7", bucket=bucket, s3=stack.client("s3")
    )
    for name, value in stack.base_env().items():
        if name.startswith(("AWS_", "BYOM_")):
            monkeypatch.setenv(name, value)

    def chosen(key: str, metadata: dict[str, str], default: str) -> ModelRef | None:
        monkeypatch.setenv("BYOM_DEFAULT_MODEL", default)
        get_settings.cache_clear()
        aws.s3.cache_clear()
        upload = Upload(bucket=bucket, key=key, etag='"x"', size=1, metadata=metadata)
        return choose_model(upload)

    try:
        assert chosen("input/rows.csv", {}, "") is None
        assert chosen("input/rows.csv", {}, "house") == ModelRef("house", "7")
        assert chosen("input/rows.csv", {}, "house:7") == ModelRef("house", "7")
        # What the upload names wins (the default is not even looked up); a folder
        # that is no model's is only a folder.
        assert chosen("input/rows.csv", {"byom-model": "house"}, "gone") == ModelRef("house", "7")
        assert chosen("input/not-a-model/r.csv", {}, "house") == ModelRef("house", "7")
        with pytest.raises(InputError, match="setting BYOM_DEFAULT_MODEL"):
            chosen("input/rows.csv", {}, "gone")
    finally:
        get_settings.cache_clear()
        aws.s3.cache_clear()
