"""SageMaker's own clients against the local stack: the AWS CLI, boto3 and its waiter,
and the SageMaker Python SDK's Transformer, unchanged but for the endpoint URL.

Each test is a user's script: create a model from a `model.tar.gz` in the bucket,
start a transform job, wait for it, read the `.out` objects. Input and output live
outside `input/`, so byom's upload trigger never sees them: only the transform job
does (docs/sagemaker-transform.md).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from botocore.exceptions import ClientError

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.sagemaker_jobs import (
    INSTANCE,
    ROLE,
    XGBOOST_IMAGE,
    aws,
    aws_json,
    feature_csv,
    get,
    keys_under,
    lines_as_floats,
    put,
    quick_waiters,
    wait_for_job,
    xgboost_model_tar,
    xgboost_predictions,
)
from tests.integration.sagemaker_sdk import run_with_sdk

pytestmark = pytest.mark.integration

ARN = re.compile(r"arn:aws:sagemaker:us-east-1:\d{12}:transform-job/")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(model_dir=model_dir, log_dir=tmp_path_factory.mktemp("stack-logs"))
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def s3(stack):
    return stack.client("s3")


@pytest.fixture(scope="module")
def sagemaker(stack):
    return stack.client("sagemaker")


@pytest.fixture(scope="module")
def xgb_model_url(stack, s3, model_dir):
    """The sample booster as a SageMaker XGBoost model.tar.gz, in the stack's bucket."""
    return put(
        s3, stack.config.bucket, "sagemaker/models/xgb/model.tar.gz", xgboost_model_tar(model_dir)
    )


def job_request(name: str, model: str, source: str, output: str, **extra):
    request = {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": INSTANCE,
    }
    return request | extra


def create_xgb_model(sagemaker, name: str, model_url: str) -> None:
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": model_url},
        ExecutionRoleArn=ROLE,
    )


def test_aws_cli_creates_runs_waits_describes_and_lists(
    stack, s3, xgb_model_url, model_dir, tmp_path
):
    bucket, endpoint, region = stack.config.bucket, stack.endpoint_url, stack.config.region
    inputs = {"a.csv": feature_csv(300, seed=1), "nested/b.csv": feature_csv(200, seed=2)}
    for name, body in inputs.items():
        put(s3, bucket, f"sagemaker/cli/in/{name}", body)

    model = aws_json(
        endpoint, region, "sagemaker", "create-model",
        "--model-name", "cli-xgb",
        "--primary-container", f"Image={XGBOOST_IMAGE},ModelDataUrl={xgb_model_url}",
        "--execution-role-arn", ROLE,
    )  # fmt: skip
    assert model["ModelArn"].endswith(":model/cli-xgb")

    job = job_request(
        "cli-job", "cli-xgb", f"s3://{bucket}/sagemaker/cli/in/", f"s3://{bucket}/sagemaker/cli/out",
        BatchStrategy="MultiRecord", MaxPayloadInMB=1,
    )  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(job))
    created = aws_json(
        endpoint, region, "sagemaker", "create-transform-job",
        "--cli-input-json", f"file://{tmp_path / 'job.json'}",
    )  # fmt: skip
    assert ARN.match(created["TransformJobArn"]), created

    waited = aws(
        endpoint, region, "sagemaker", "wait", "transform-job-completed-or-stopped",
        "--transform-job-name", "cli-job",
        env=quick_waiters(tmp_path / "waiters"),
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr + stack.logs()

    described = aws_json(
        endpoint, region, "sagemaker", "describe-transform-job", "--transform-job-name", "cli-job"
    )
    assert described["TransformJobStatus"] == "Completed", described
    assert described["TransformJobArn"] == created["TransformJobArn"]
    assert described["ModelName"] == "cli-xgb"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["MaxPayloadInMB"] == 1
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["TransformOutput"]["AssembleWith"] == "Line"
    assert described["TransformResources"] == INSTANCE
    assert (
        described["CreationTime"]
        <= described["TransformStartTime"]
        <= described["TransformEndTime"]
    )

    # One .out per object, named by its key under the prefix; a line per record.
    out = "sagemaker/cli/out/"
    assert sorted(keys_under(s3, bucket, out)) == [f"{out}a.csv.out", f"{out}nested/b.csv.out"]
    for name, body in inputs.items():
        answer = get(s3, bucket, f"{out}{name}.out")
        assert answer.count(b"\n") == body.count(b"\n")
        np.testing.assert_allclose(
            lines_as_floats(answer), xgboost_predictions(model_dir, body), rtol=0, atol=1e-6
        )

    listed = aws_json(
        endpoint, region, "sagemaker", "list-transform-jobs", "--name-contains", "cli-job"
    )
    [summary] = listed["TransformJobSummaries"]
    assert summary["TransformJobName"] == "cli-job"
    assert summary["TransformJobStatus"] == "Completed"
    assert {"CreationTime", "TransformEndTime", "LastModifiedTime"} <= summary.keys()

    described_model = aws_json(
        endpoint, region, "sagemaker", "describe-model", "--model-name", "cli-xgb"
    )
    assert described_model["PrimaryContainer"]["ModelDataUrl"] == xgb_model_url
    models = aws_json(endpoint, region, "sagemaker", "list-models", "--name-contains", "cli-xgb")
    assert [m["ModelName"] for m in models["Models"]] == ["cli-xgb"]
    aws_json(endpoint, region, "sagemaker", "delete-model", "--model-name", "cli-xgb")
    gone = aws(endpoint, region, "sagemaker", "describe-model", "--model-name", "cli-xgb")
    assert gone.returncode != 0 and "ValidationException" in gone.stderr


def test_aws_cli_stops_a_job_and_no_output_appears(stack, s3, sagemaker, xgb_model_url, tmp_path):
    bucket, endpoint, region = stack.config.bucket, stack.endpoint_url, stack.config.region
    create_xgb_model(sagemaker, "stop-xgb", xgb_model_url)
    # One record per request, one request at a time: long enough to stop midway.
    put(s3, bucket, "sagemaker/stop/in/big.csv", feature_csv(50_000, seed=3))
    sagemaker.create_transform_job(
        **job_request(
            "stop-job", "stop-xgb", f"s3://{bucket}/sagemaker/stop/in/",
            f"s3://{bucket}/sagemaker/stop/out", BatchStrategy="SingleRecord",
            MaxConcurrentTransforms=1,
        )
    )  # fmt: skip

    stopped = aws(
        endpoint, region, "sagemaker", "stop-transform-job", "--transform-job-name", "stop-job"
    )
    assert stopped.returncode == 0, stopped.stderr
    status = sagemaker.describe_transform_job(TransformJobName="stop-job")["TransformJobStatus"]
    assert status in ("Stopping", "Stopped")

    waited = aws(
        endpoint, region, "sagemaker", "wait", "transform-job-completed-or-stopped",
        "--transform-job-name", "stop-job",
        env=quick_waiters(tmp_path / "waiters"),
    )  # fmt: skip
    assert waited.returncode == 0, waited.stderr + stack.logs()
    described = sagemaker.describe_transform_job(TransformJobName="stop-job")
    assert described["TransformJobStatus"] == "Stopped"
    assert "TransformEndTime" in described
    assert keys_under(s3, bucket, "sagemaker/stop/out/") == []


def test_boto3_waiter_and_list_filters_sorting_and_paging(stack, s3, sagemaker, xgb_model_url):
    bucket = stack.config.bucket
    create_xgb_model(sagemaker, "page-xgb", xgb_model_url)
    names = ["page-c", "page-a", "page-b"]
    for index, name in enumerate(names):
        put(s3, bucket, f"sagemaker/{name}/in/x.csv", feature_csv(50, seed=10 + index))
        sagemaker.create_transform_job(
            **job_request(
                name, "page-xgb", f"s3://{bucket}/sagemaker/{name}/in/",
                f"s3://{bucket}/sagemaker/{name}/out",
            )
        )  # fmt: skip
    waiter = sagemaker.get_waiter("transform_job_completed_or_stopped")
    for name in names:
        waiter.wait(TransformJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})

    first = sagemaker.list_transform_jobs(
        NameContains="page-", SortBy="Name", SortOrder="Ascending", MaxResults=2
    )
    assert [s["TransformJobName"] for s in first["TransformJobSummaries"]] == ["page-a", "page-b"]
    rest = sagemaker.list_transform_jobs(
        NameContains="page-", SortBy="Name", SortOrder="Ascending", MaxResults=2,
        NextToken=first["NextToken"],
    )  # fmt: skip
    assert [s["TransformJobName"] for s in rest["TransformJobSummaries"]] == ["page-c"]
    assert "NextToken" not in rest

    pages = sagemaker.get_paginator("list_transform_jobs").paginate(
        NameContains="page-", SortBy="CreationTime", SortOrder="Descending",
        StatusEquals="Completed", PaginationConfig={"PageSize": 1},
    )  # fmt: skip
    summaries = [s for page in pages for s in page["TransformJobSummaries"]]
    assert sorted(s["TransformJobName"] for s in summaries) == sorted(names)
    times = [s["CreationTime"] for s in summaries]
    assert times == sorted(times, reverse=True)  # newest first
    assert (
        sagemaker.list_transform_jobs(NameContains="page-", StatusEquals="Failed")[
            "TransformJobSummaries"
        ]
        == []
    )


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def test_errors_come_back_as_sagemakers(stack, s3, sagemaker, xgb_model_url):
    bucket = stack.config.bucket
    create_xgb_model(sagemaker, "errors-xgb", xgb_model_url)
    put(s3, bucket, "sagemaker/errors/in/x.csv", feature_csv(20, seed=5))
    good = job_request(
        "errors-job", "errors-xgb", f"s3://{bucket}/sagemaker/errors/in/",
        f"s3://{bucket}/sagemaker/errors/out",
    )  # fmt: skip

    code, message = error_of(
        sagemaker.create_transform_job,
        **good | {"TransformInput": good["TransformInput"] | {"SplitType": "RecordIO"}},
    )
    assert code == "ValidationException" and "RecordIO" in message

    code, message = error_of(sagemaker.create_transform_job, **good | {"ModelName": "nowhere"})
    assert code == "ValidationException" and "Could not find model" in message

    code, message = error_of(
        sagemaker.create_transform_job,
        **good | {"MaxConcurrentTransforms": 20, "MaxPayloadInMB": 6},
    )
    assert code == "ValidationException" and "100" in message

    code, message = error_of(sagemaker.create_transform_job, **good | {"TransformJobName": "a_b"})
    assert code == "ValidationException" and "transformJobName" in message

    sagemaker.create_transform_job(**good)
    code, _ = error_of(sagemaker.create_transform_job, **good)
    assert code == "ResourceInUse"

    code, _ = error_of(sagemaker.describe_transform_job, TransformJobName="never-made")
    assert code in ("ValidationException", "ResourceNotFound")
    code, _ = error_of(sagemaker.stop_transform_job, TransformJobName="never-made")
    assert code in ("ValidationException", "ResourceNotFound")
    assert wait_for_job(sagemaker, "errors-job")["TransformJobStatus"] == "Completed"


def test_describe_shows_sagemakers_defaults_for_what_the_request_left_out(
    stack, s3, sagemaker, xgb_model_url
):
    # As DescribeTransformJob answers on AWS (sm-batch_transform_pytorch's printed
    # describe): DataProcessing, CompressionType, SplitType and AssembleWith filled in.
    bucket = stack.config.bucket
    create_xgb_model(sagemaker, "defaults-xgb", xgb_model_url)
    put(s3, bucket, "sagemaker/defaults/in/x.csv", feature_csv(10, seed=6))
    sagemaker.create_transform_job(
        TransformJobName="defaults-job",
        ModelName="defaults-xgb",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/sagemaker/defaults/in/",
                }
            },
            "ContentType": "text/csv",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/sagemaker/defaults/out"},
        TransformResources=INSTANCE,
    )
    described = wait_for_job(sagemaker, "defaults-job")
    assert described["TransformJobStatus"] == "Completed", described
    assert described["DataProcessing"] == {
        "InputFilter": "$",
        "JoinSource": "None",
        "OutputFilter": "$",
    }
    assert described["TransformInput"]["CompressionType"] == "None"
    assert described["TransformInput"]["SplitType"] == "None"
    assert described["TransformOutput"]["AssembleWith"] == "None"


SDK_SCRIPT = """
import json, sys
import boto3, sagemaker
from sagemaker.transformer import Transformer

args = json.loads(sys.argv[1])
session = sagemaker.Session(
    boto_session=boto3.Session(region_name=args["region"]), default_bucket=args["bucket"]
)
transformer = Transformer(
    model_name=args["model"], instance_count=1, instance_type="ml.m5.xlarge",
    strategy="MultiRecord", assemble_with="Line", accept="text/csv",
    output_path=args["output"], sagemaker_session=session,
)
transformer.transform(
    args["input"], content_type="text/csv", split_type="Line", job_name=args["job"], wait=False
)
transformer.wait(logs=False)
print(json.dumps({"job": transformer.latest_transform_job.job_name}))
"""


def test_sagemaker_python_sdk_transformer(stack, s3, sagemaker, xgb_model_url, model_dir, tmp_path):
    bucket = stack.config.bucket
    create_xgb_model(sagemaker, "sdk-xgb", xgb_model_url)
    body = feature_csv(400, seed=7)
    put(s3, bucket, "sagemaker/sdk/in/rows.csv", body)
    args = {
        "region": stack.config.region,
        "bucket": bucket,
        "model": "sdk-xgb",
        "job": "sdk-job",
        "input": f"s3://{bucket}/sagemaker/sdk/in/",
        "output": f"s3://{bucket}/sagemaker/sdk/out",
    }
    done = run_with_sdk(SDK_SCRIPT, args, stack.endpoint_url, tmp_path)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"job": "sdk-job"}
    assert (
        sagemaker.describe_transform_job(TransformJobName="sdk-job")["TransformJobStatus"]
        == "Completed"
    )
    answer = get(s3, bucket, "sagemaker/sdk/out/rows.csv.out")
    np.testing.assert_allclose(
        lines_as_floats(answer), xgboost_predictions(model_dir, body), rtol=0, atol=1e-6
    )


def test_data_capture_generate_inference_id_as_the_developer_guide_shows(
    stack, s3, sagemaker, xgb_model_url, model_dir
):
    """The developer guide's data-capture request ("Capture data from batch transform
    job", boto3): CSV output gets the inference id and time as its last two cells,
    `0, 1f1d57b1-2e6f-488c-8c30-db4e6d757861,2022-08-30T00:49:15Z`."""
    bucket = stack.config.bucket
    create_xgb_model(sagemaker, "capture-xgb", xgb_model_url)
    body = feature_csv(120, seed=8)
    put(s3, bucket, "sagemaker/capture/in/dummy_0.csv", body)
    sagemaker.create_transform_job(
        TransformJobName="capture-job",
        MaxConcurrentTransforms=2,
        ModelName="capture-xgb",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/sagemaker/capture/in/",
                }
            },
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{bucket}/sagemaker/capture/out/",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
        DataCaptureConfig={
            "DestinationS3Uri": f"s3://{bucket}/sagemaker/capture/captured",
            "GenerateInferenceId": True,
        },
    )
    described = wait_for_job(sagemaker, "capture-job")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert described["DataCaptureConfig"]["GenerateInferenceId"] is True

    lines = get(s3, bucket, "sagemaker/capture/out/dummy_0.csv.out").decode().splitlines()
    cells = [line.split(",") for line in lines]
    assert {len(row) for row in cells} == {3}
    np.testing.assert_allclose(
        [float(row[0]) for row in cells], xgboost_predictions(model_dir, body), rtol=0, atol=1e-6
    )
    ids = [row[1] for row in cells]
    assert all(UUID.fullmatch(value) for value in ids) and len(set(ids)) == len(ids)
    times = {row[2] for row in cells}
    assert all(TIME.fullmatch(value) for value in times)
    start = described["TransformStartTime"].replace(microsecond=0)
    assert all(start <= parse_time(value) <= described["TransformEndTime"] for value in times)


SDK_MODEL_SCRIPT = """
import json, sys
import boto3, sagemaker
from sagemaker.model import Model

args = json.loads(sys.argv[1])
session = sagemaker.Session(
    boto_session=boto3.Session(region_name=args["region"]), default_bucket=args["bucket"]
)
model = Model(
    image_uri=args["image"], model_data=args["model_data"], role=args["role"],
    name=args["model"], sagemaker_session=session,
)
transformer = model.transformer(
    instance_count=1, instance_type="ml.m5.xlarge", output_path=args["output"],
)
transformer.transform(
    args["input"], content_type="text/csv", split_type="Line", job_name=args["job"],
    wait=True, logs=False,
)
print(json.dumps({"job": transformer.latest_transform_job.job_name}))
"""


def test_sagemaker_python_sdk_model_transformer_creates_the_model(
    stack, s3, sagemaker, xgb_model_url, model_dir, tmp_path
):
    """The notebooks' usual path: `Model(image_uri, model_data, role).transformer(...)`
    creates the model with the SDK's own CreateModel request, then transforms."""
    bucket = stack.config.bucket
    body = feature_csv(300, seed=9)
    put(s3, bucket, "sagemaker/sdk-model/in/rows.csv", body)
    args = {
        "region": stack.config.region,
        "bucket": bucket,
        "image": XGBOOST_IMAGE,
        "model_data": xgb_model_url,
        "role": ROLE,
        "model": "sdk-made-xgb",
        "job": "sdk-model-job",
        "input": f"s3://{bucket}/sagemaker/sdk-model/in/",
        "output": f"s3://{bucket}/sagemaker/sdk-model/out",
    }
    done = run_with_sdk(SDK_MODEL_SCRIPT, args, stack.endpoint_url, tmp_path)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"job": "sdk-model-job"}
    model = sagemaker.describe_model(ModelName="sdk-made-xgb")
    assert model["PrimaryContainer"]["Image"] == XGBOOST_IMAGE
    answer = get(s3, bucket, "sagemaker/sdk-model/out/rows.csv.out")
    # No Accept: the XGBoost container's default, one prediction a line.
    np.testing.assert_allclose(
        lines_as_floats(answer), xgboost_predictions(model_dir, body), rtol=0, atol=1e-6
    )
