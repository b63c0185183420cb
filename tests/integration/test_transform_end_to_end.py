"""A transform job through the whole local stack, seen as a SageMaker user sees it:
DescribeTransformJob's states and times, the `.out` objects, and the state-change
events on the default bus, each shaped as DescribeTransformJob's answer."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from infra.local.resources import _queue_arn, _route
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.helpers import with_cell
from tests.integration.sagemaker_jobs import (
    INSTANCE,
    ROLE,
    XGBOOST_IMAGE,
    feature_csv,
    get,
    lines_as_floats,
    put,
    xgboost_model_tar,
    xgboost_predictions,
)

pytestmark = pytest.mark.integration

ISO_SECOND = "%Y-%m-%dT%H:%M:%SZ"


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(model_dir=model_dir, log_dir=tmp_path_factory.mktemp("stack-logs"))
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def clients(stack):
    return {name: stack.client(name) for name in ("s3", "sqs", "events", "sagemaker")}


@pytest.fixture(scope="module")
def event_queue(clients) -> str:
    sqs = clients["sqs"]
    url: str = sqs.create_queue(QueueName="e2e-sagemaker-events")["QueueUrl"]
    _route(
        clients["events"],
        "e2e-sagemaker-events",
        {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Transform Job State Change"]},
        _queue_arn(sqs, url),
    )
    return url


@pytest.fixture(scope="module")
def model(stack, clients, model_dir) -> str:
    url = put(
        clients["s3"],
        stack.config.bucket,
        "e2e/models/xgb/model.tar.gz",
        xgboost_model_tar(model_dir),
    )
    clients["sagemaker"].create_model(
        ModelName="e2e-xgb",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": url},
        ExecutionRoleArn=ROLE,
    )
    return "e2e-xgb"


def events_until(sqs: Any, url: str, name: str, final: str, timeout: float = 120) -> list[dict]:
    """The job's events, in the order they arrived, up to its ``final`` status."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            event = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if event["detail"]["TransformJobName"] == name:
                found.append(event)
        if any(e["detail"]["TransformJobStatus"] == final for e in found):
            return found
    raise TimeoutError(f"no {final} event for {name}: {found}")


def start(clients: dict[str, Any], name: str, model: str, source: str, output: str) -> None:
    sagemaker = clients["sagemaker"]
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": output, "Accept": "text/csv", "AssembleWith": "Line"},
        TransformResources=INSTANCE,
    )


def assert_shaped_as_describe(detail: dict[str, Any], described: dict[str, Any]) -> None:
    described = {k: v for k, v in described.items() if k != "ResponseMetadata"}
    assert set(detail) == set(described) | {"Tags"}
    for key, value in described.items():
        if isinstance(value, datetime):
            assert detail[key] == value.astimezone(UTC).strftime(ISO_SECOND), key
        else:
            assert detail[key] == value, key


def test_a_completed_job_writes_each_out_and_announces_each_state(
    stack, clients, model, event_queue, model_dir
):
    s3, bucket = clients["s3"], stack.config.bucket
    data = {"a.csv": feature_csv(300, seed=1), "more/b.csv": feature_csv(200, seed=2)}
    for key, body in data.items():
        put(s3, bucket, f"e2e/good/in/{key}", body)
    start(clients, "e2e-good", model, f"s3://{bucket}/e2e/good/in/", f"s3://{bucket}/e2e/good/out")
    clients["sagemaker"].get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="e2e-good", WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    described = clients["sagemaker"].describe_transform_job(TransformJobName="e2e-good")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert (
        described["CreationTime"]
        <= described["TransformStartTime"]
        <= described["TransformEndTime"]
    )
    for key, body in data.items():
        predictions = lines_as_floats(get(s3, bucket, f"e2e/good/out/{key}.out"))
        np.testing.assert_allclose(predictions, xgboost_predictions(model_dir, body), atol=1e-6)

    found = events_until(clients["sqs"], event_queue, "e2e-good", "Completed")
    assert [e["detail"]["TransformJobStatus"] for e in found] == ["InProgress", "Completed"]
    completed = found[-1]
    assert completed["source"] == "aws.sagemaker"
    assert completed["resources"] == [described["TransformJobArn"]]
    assert_shaped_as_describe(completed["detail"], described)


def test_a_failing_object_fails_the_job_and_the_good_one_still_writes(
    stack, clients, model, event_queue
):
    s3, bucket = clients["s3"], stack.config.bucket
    put(s3, bucket, "e2e/bad/in/good.csv", feature_csv(50, seed=3))
    put(s3, bucket, "e2e/bad/in/poor.csv", with_cell(feature_csv(50, seed=4), 7, 3, b"oops"))
    start(clients, "e2e-bad", model, f"s3://{bucket}/e2e/bad/in/", f"s3://{bucket}/e2e/bad/out")
    found = events_until(clients["sqs"], event_queue, "e2e-bad", "Failed")
    described = clients["sagemaker"].describe_transform_job(TransformJobName="e2e-bad")
    assert described["TransformJobStatus"] == "Failed"
    reason = described["FailureReason"]
    assert "poor.csv" in reason and "line 7" in reason and "column 3" in reason, reason
    assert [e["detail"]["TransformJobStatus"] for e in found] == ["InProgress", "Failed"]
    assert found[-1]["detail"]["FailureReason"] == reason
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="e2e/bad/out/").get("Contents", [])
    ]
    assert keys == ["e2e/bad/out/good.csv.out"]


def test_a_gzip_prefix_of_three_objects_inflates_each_and_names_the_one_that_is_not(
    stack, clients, model, event_queue, model_dir
):
    """CompressionType Gzip applies to every object under the prefix, as on SageMaker:
    the two gzip objects are inflated and scored, and the one that is not gzip fails
    the job, named, without taking the others' outputs with it."""
    s3, bucket = clients["s3"], stack.config.bucket
    data = {"one.csv.gz": feature_csv(120, seed=5), "two.csv.gz": feature_csv(80, seed=6)}
    for key, body in data.items():
        put(s3, bucket, f"e2e/gz/in/{key}", gzip.compress(body))
    put(s3, bucket, "e2e/gz/in/three.csv", feature_csv(40, seed=7))
    clients["sagemaker"].create_transform_job(
        TransformJobName="e2e-gzip",
        ModelName=model,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/e2e/gz/in/"}
            },
            "ContentType": "text/csv",
            "CompressionType": "Gzip",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/e2e/gz/out", "AssembleWith": "Line"},
        TransformResources=INSTANCE,
    )
    events_until(clients["sqs"], event_queue, "e2e-gzip", "Failed")
    described = clients["sagemaker"].describe_transform_job(TransformJobName="e2e-gzip")
    assert described["TransformJobStatus"] == "Failed"
    assert "three.csv" in described["FailureReason"], described["FailureReason"]
    for key, body in data.items():
        predictions = lines_as_floats(get(s3, bucket, f"e2e/gz/out/{key}.out"))
        np.testing.assert_allclose(predictions, xgboost_predictions(model_dir, body), atol=1e-6)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="e2e/gz/out/")["Contents"]]
    assert sorted(keys) == ["e2e/gz/out/one.csv.gz.out", "e2e/gz/out/two.csv.gz.out"]
