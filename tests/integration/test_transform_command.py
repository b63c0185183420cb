"""byom transform against the local stack: the same request, the same API, the same answers.

The command runs as its own process and talks to the local stack's moto server,
where byom's SageMaker API answers (infra/local/sagemaker_dispatch.py); what it
prints is what boto3's sagemaker client gets for the same job.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from cli import transform
from infra.local.processes import Service, free_port, wait_until
from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from shared.transform import TransformObject
from tests.integration.sagemaker_jobs import tar_gz

pytestmark = pytest.mark.integration

MODEL = "cli-model"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    work = tmp_path_factory.mktemp("transform-command")
    local = LocalStack(StackConfig(model_dir=work, log_dir=work / "logs"))
    local.start_aws_only()
    try:
        yield local
    finally:
        local.stop()


def client(stack: LocalStack, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=stack.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def byom(
    stack: LocalStack, *args: str, where: tuple[str, ...] = (), secret: str = "test"
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [sys.executable, "-m", "cli", "--endpoint-url", stack.endpoint_url, *where]
    return subprocess.run(
        [*command, "transform", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def function_url(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The template's handler behind an IAM-checking function URL, as deployed."""
    port = free_port()
    env = {
        name: value
        for name, value in (stack.base_env() | stack.sagemaker_env()).items()
        if not name.startswith("OTEL_")
    }
    service = Service(
        name="function-url",
        command=[sys.executable, "-m", "tests.integration.function_url", "--port", str(port)],
        env=env,
        log_path=tmp_path_factory.mktemp("function-url") / "function-url.log",
        cwd=REPO,
    )
    service.start()
    try:
        wait_until(lambda: service.check_alive() and listening(port), timeout=30, what="URL")
        yield f"http://127.0.0.1:{port}/"
    finally:
        service.stop()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def deployed(stack: LocalStack, function_url: str) -> str:
    """A stack whose outputs name the function URL, as byom's template's do."""
    name = "byom-urltest"
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "Region": {"Value": "us-east-1"},
            transform.OUTPUT_API_URL: {"Value": function_url},
        },
    }
    cloudformation = client(stack, "cloudformation")
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    wait_until(
        lambda: (
            cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
            == "CREATE_COMPLETE"
        ),
        timeout=30,
        what="stack",
    )
    return name


@pytest.fixture(scope="module")
def job_json(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bucket = stack.config.bucket
    s3 = client(stack, "s3")
    # A real package: registration repacks it with the job's container settings.
    package = tar_gz({"xgboost-model": b"package bytes"})
    s3.put_object(Bucket=bucket, Key="models/cli-src/model.tar.gz", Body=package)
    for name in ("b.csv", "a.csv"):
        s3.put_object(Bucket=bucket, Key=f"batch/cli/{name}", Body=b"1,2,3\n4,5,6\n")
    client(stack, "sagemaker").create_model(
        ModelName=MODEL,
        PrimaryContainer={
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "ModelDataUrl": f"s3://{bucket}/models/cli-src/model.tar.gz",
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
    )
    request = {
        "TransformJobName": "cli-job",
        "ModelName": MODEL,
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/batch/cli/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{bucket}/output/cli/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }
    path = tmp_path_factory.mktemp("job") / "job.json"
    path.write_text(json.dumps(request))
    return path


def iso(value: Any) -> Any:
    """boto3's answer as the command prints it (timestamps in ISO 8601)."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()))


def ingest_messages(stack: LocalStack) -> list[dict[str, Any]]:
    sqs = client(stack, "sqs")
    assert stack.resources is not None
    url = stack.resources.queue_urls["ingest"]
    found: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return found
        found += [json.loads(message["Body"]) for message in messages]


def test_create_describe_and_stop_through_the_command(stack: LocalStack, job_json: Path) -> None:
    created = byom(stack, "--cli-input-json", f"file://{job_json}")
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["TransformJobArn"]
    assert arn.endswith(":transform-job/cli-job")

    # The same API boto3 talks to: the job is there, with the request's own members.
    described = byom(stack, "describe", "cli-job")
    assert described.returncode == 0, described.stderr
    printed = json.loads(described.stdout)
    answer = client(stack, "sagemaker").describe_transform_job(TransformJobName="cli-job")
    answer.pop("ResponseMetadata")
    assert printed == iso(answer)
    assert printed["TransformJobArn"] == arn
    assert printed["TransformJobStatus"] == "InProgress"
    assert printed["BatchStrategy"] == "MultiRecord"
    assert printed["TransformInput"]["SplitType"] == "Line"

    # One message per input object went to ingest, in key order.
    objects = [
        TransformObject.model_validate(body)
        for body in ingest_messages(stack)
        if body.get("type") == "transform-object"
    ]
    assert [(o.index, o.key) for o in sorted(objects, key=lambda o: o.index)] == [
        (0, "batch/cli/a.csv"),
        (1, "batch/cli/b.csv"),
    ]

    # SageMaker's own errors come back as SageMaker words them.
    again = byom(stack, "--cli-input-json", f"file://{job_json}")
    assert again.returncode == 1
    assert "CreateTransformJob: ResourceInUse" in again.stderr

    stopped = byom(stack, "stop", "cli-job")
    assert stopped.returncode == 0, stopped.stderr
    status = client(stack, "sagemaker").describe_transform_job(TransformJobName="cli-job")
    assert status["TransformJobStatus"] in ("Stopping", "Stopped")


def test_unknown_job_is_sagemakers_error(stack: LocalStack) -> None:
    missing = byom(stack, "describe", "no-such-job")
    assert missing.returncode == 1
    # SageMaker's own answer for an unknown transform job.
    assert "DescribeTransformJob: ValidationException: Could not find requested job" in (
        missing.stderr
    )


def test_deployed_stack_path_signs_for_lambda_and_runs_the_same_api(
    stack: LocalStack, job_json: Path, deployed: str, tmp_path: Path
) -> None:
    request = json.loads(job_json.read_text()) | {"TransformJobName": "url-job"}
    job = tmp_path / "url-job.json"
    job.write_text(json.dumps(request))
    on_aws = ("--stack", deployed)
    created = byom(stack, "--cli-input-json", f"file://{job}", where=on_aws)
    assert created.returncode == 0, created.stderr
    arn = json.loads(created.stdout)["TransformJobArn"]
    assert arn.endswith(":transform-job/url-job")
    # The function's answer and the local API's are one store's, one shape.
    described = byom(stack, "describe", "url-job", where=on_aws)
    assert described.returncode == 0, described.stderr
    answer = client(stack, "sagemaker").describe_transform_job(TransformJobName="url-job")
    answer.pop("ResponseMetadata")
    assert json.loads(described.stdout) == iso(answer)
    # --local goes to the local stack even with --stack.
    local = byom(stack, "--local", "describe", "url-job", where=on_aws)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == json.loads(described.stdout)
    # Without a valid signature the URL refuses the request.
    refused = byom(stack, "describe", "url-job", where=on_aws, secret="not-the-secret")
    assert refused.returncode == 1
    assert "DescribeTransformJob: AccessDeniedException: Forbidden" in refused.stderr
    assert "lambda:InvokeFunctionUrl" in refused.stderr
