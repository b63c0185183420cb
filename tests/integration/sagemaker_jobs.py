"""Helpers for the SageMaker client tests: model archives as SageMaker's containers
hold them, the real `aws` command pointed at the local stack, and job waits.

The tests drive the clients a SageMaker user has (the AWS CLI, boto3, the SageMaker
Python SDK) against the stack's endpoint, the way docs/sagemaker-transform.md shows.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost

from infra.local.processes import wait_until
from model.data import generate
from tests.features import write_feature_csv

# Images as SageMaker's examples name them (the tag and account do not matter to byom;
# the repository name picks the container's serving defaults).
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
INSTANCE = {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
TERMINAL = ("Completed", "Failed", "Stopped")
AWS = Path(sys.executable).with_name("aws")


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A model.tar.gz holding ``members`` (name -> bytes) at its root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def xgboost_model_tar(model_dir: Path) -> bytes:
    """The sample booster as SageMaker's XGBoost training leaves it: ``xgboost-model``."""
    return tar_gz({"xgboost-model": (model_dir / "xgboost-model.json").read_bytes()})


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def xgboost_predictions(model_dir: Path, csv: bytes) -> np.ndarray:
    booster = xgboost.Booster()
    booster.load_model(str(model_dir / "xgboost-model.json"))
    frame = pd.read_csv(io.BytesIO(csv), header=None, dtype=np.float32)
    return np.asarray(booster.inplace_predict(frame.to_numpy(), validate_features=False))


def lines_as_floats(body: bytes) -> np.ndarray:
    return np.array(body.decode().split("\n")[:-1], dtype=np.float64)


def put(s3: Any, bucket: str, key: str, body: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def get(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def wait_for_job(sagemaker: Any, name: str, timeout: float = 300) -> dict[str, Any]:
    """DescribeTransformJob once the job has ended (Completed, Failed or Stopped)."""
    last: dict[str, Any] = {}

    def ended() -> bool:
        last.update(sagemaker.describe_transform_job(TransformJobName=name))
        return last["TransformJobStatus"] in TERMINAL

    wait_until(ended, timeout=timeout, what=f"transform job {name} to end")
    return last


def cli_env(region: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for the `aws` command: test credentials, no user config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_PAGER": "",
    }
    return env | (extra or {})


def aws(
    endpoint: str, region: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real AWS CLI against the local stack (as the docs' example does)."""
    command = [str(AWS), "--endpoint-url", endpoint, "--output", "json", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=cli_env(region, env), timeout=600
    )


def aws_json(endpoint: str, region: str, *args: str) -> Any:
    done = aws(endpoint, region, *args)
    assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else {}


def quick_waiters(directory: Path, delay: int = 1) -> dict[str, str]:
    """An AWS_DATA_PATH whose SageMaker waiters poll every ``delay`` s instead of 60 s.

    The acceptors are the CLI's own (copied from its botocore data); only the delay
    changes, so `aws sagemaker wait transform-job-completed-or-stopped` keeps its
    meaning and a test does not sleep a minute between polls.
    """
    source = AWS.parent.parent / "lib"
    [waiters] = source.glob(
        "python3*/site-packages/awscli/botocore/data/sagemaker/*/waiters-2.json"
    )
    model = json.loads(waiters.read_text())
    for waiter in model["waiters"].values():
        waiter["delay"] = delay
        waiter["maxAttempts"] = 600
    target = directory / "sagemaker" / waiters.parent.name / "waiters-2.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(model))
    return {"AWS_DATA_PATH": str(directory)}
