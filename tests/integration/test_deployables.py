"""What deploys is what was tested: the local stack run from the deployables themselves.

The functions run from the Lambda bundle ``infra/deploy.sh`` uploads, unzipped into
an empty folder, by the Lambda runtime's Python with nothing else on its path (the
queue-driven handlers, the reaper, and SageMaker's API behind its function URL); the
worker and the model server run from fresh venvs holding exactly their Dockerfiles'
``pip install`` lines and app folders holding exactly their ``COPY`` lines. A module
missing from any of them fails here. (The first run installs them, a minute or two;
later runs reuse ``.venv-deployables/`` while the lock and the Dockerfiles stay; the
images' distributions that ``.venv`` holds at the same version are hard-linked from it
rather than installed again: tests/integration/venv_links.py.)
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infra.local import deployables
from infra.local.poller import Bundle, InvocationFailed, Runtime, to_lambda_record
from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import (
    DEAD_LETTERS,
    HANDLERS,
    REAPER_HANDLER,
    WORKER_MODULE,
    StackConfig,
)
from infra.local.timer import scheduled_event
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item
from tests.integration.test_pipeline import expected_predictions
from tests.integration.venv_links import install as linked

pytestmark = pytest.mark.integration

KIB = 1024


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The bundle and the two images' Python, as they deploy."""
    work = tmp_path_factory.mktemp("deployables")
    return {
        "lambda": deployables.lambda_runtime(work / "lambda"),
        "worker": deployables.image(REPO / "services/inference_worker/Dockerfile", install=linked),
        "server": deployables.image(REPO / "model/server/Dockerfile", install=linked),
    }


@pytest.fixture(scope="module")
def stack(model_dir, built, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("deployables-logs"),
        reaper_every_seconds=1.0,
        # A small file takes the scheduler's own path, a larger one the workers'.
        settings={"BYOM_INLINE_MAX_BYTES": str(64 * KIB), "BYOM_CHUNK_BYTES": str(64 * KIB)},
        lambda_bundle=built["lambda"],
        worker_command=built["worker"].command(WORKER_MODULE),
        model_server_command=built["server"].command("model.server"),
    )
    with LocalStack(config) as stack:
        yield stack


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def test_the_bundle_holds_nothing_from_the_working_tree_s_environment(built):
    """The functions' Python sees the standard library, the bundle and boto3 only."""
    bundle = built["lambda"]
    shown = subprocess.run(
        [bundle.python, "-I", "-S", "-c", "import sys; print('\\n'.join(sys.path))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert not any("site-packages" in folder for folder in shown), shown
    assert not any(folder.startswith(str(REPO)) for folder in shown), shown
    for image in (built["worker"], built["server"]):
        assert not (image.app / "tests").exists()
        assert (image.venv / "pyvenv.cfg").read_text().count("include-system-site-packages = false")


def test_a_job_through_every_deployable(stack, model_dir):
    s3, sqs = stack.client("s3"), stack.client("sqs")
    done = stack.subscribe_done_events("deployables-done")
    bucket = stack.config.bucket
    small, large = feature_csv(40, seed=61), feature_csv(1500, seed=62)
    assert len(small) < 64 * KIB < len(large)
    s3.put_object(Bucket=bucket, Key="input/deployed/small.csv", Body=small)
    s3.put_object(Bucket=bucket, Key="input/deployed/large.csv", Body=large)
    uris = {f"s3://{bucket}/input/deployed/{name}" for name in ("small.csv", "large.csv")}
    try:
        details = collect_done_events(sqs, done, uris, timeout=240)
    except TimeoutError:
        print(stack.logs(60))
        raise
    for name, data in (("small.csv", small), ("large.csv", large)):
        detail = details[f"s3://{bucket}/input/deployed/{name}"]
        assert detail["status"] == "SUCCEEDED", (detail, stack.logs(40))
        body = s3.get_object(Bucket=bucket, Key=detail["output_uri"].split("/", 3)[3])["Body"]
        served = np.array(body.read().split(), dtype=float)
        np.testing.assert_allclose(served, expected_predictions(model_dir, data), atol=1e-6)
    large_job = job_item(stack.client("dynamodb"), stack.config.jobs_table, detail["job_id"])
    assert large_job.get("batch_job_id"), "the larger file went through the workers"


# One message no function can use: each handles it (reports or drops it) and answers.
UNUSABLE = {
    "Records": [
        to_lambda_record(
            {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": "{}"},
            "arn:aws:sqs:us-east-1:123456789012:byom-x",
            "us-east-1",
        )
    ]
}


@pytest.mark.parametrize(
    ("spec", "event"),
    [
        (REAPER_HANDLER, scheduled_event()),
        (DEAD_LETTERS.handler, UNUSABLE),
        *[(function.handler, UNUSABLE) for function in HANDLERS.values()],
    ],
    ids=["reaper", "dead-letters", *HANDLERS],
)
def test_every_handler_imports_and_runs_from_the_bundle(stack, built, monkeypatch, spec, event):
    for name, value in stack.base_env().items():
        monkeypatch.setenv(name, value)
    runtime = Runtime(spec, function_name="deployed", timeout_seconds=60, bundle=built["lambda"])
    try:
        runtime.start()  # raises InvocationFailed, with the traceback, if it cannot import
        runtime.invoke(event)
    except InvocationFailed as failed:
        # Powertools raises when every record of a batch failed: the function ran.
        assert "All records failed processing" in str(failed), failed
        assert "ImportError" not in str(failed) and "ModuleNotFound" not in str(failed), failed
    finally:
        runtime.stop()


def test_a_module_missing_from_the_bundle_fails(built, tmp_path, monkeypatch):
    """The check itself: the same handler, its bundle short of one dependency."""
    bundle = built["lambda"]
    task = Path(bundle.path[0])
    lacking = tmp_path / "task"
    subprocess.run(["cp", "-r", str(task), str(lacking)], check=True)
    subprocess.run(["rm", "-r", str(lacking / "aws_lambda_powertools")], check=True)
    short = Bundle(python=bundle.python, path=(str(lacking), *bundle.path[1:]))
    runtime = Runtime(
        HANDLERS["status"].handler, function_name="x", timeout_seconds=60, bundle=short
    )
    with pytest.raises(InvocationFailed, match="No module named 'aws_lambda_powertools'"):
        runtime.start()
    runtime.stop()


TEMPLATE = REPO / "infra" / "cloudformation" / "byom.yaml"
# The custom resource's inline code (ZipFile), not part of the bundle.
_INLINE_HANDLERS = {"index.handler"}


def template_handlers() -> set[str]:
    """Every bundle function's handler as the template names it (module.attribute)."""
    named = set(re.findall(r"^\s+Handler: (\S+)$", TEMPLATE.read_text(), re.MULTILINE))
    return named - _INLINE_HANDLERS


def as_spec(handler: str) -> str:
    """The template's ``module.attribute`` as the local runtime's ``module:attribute``."""
    module, _, attribute = handler.rpartition(".")
    return f"{module}:{attribute}"


TRANSFORM_HANDLER = as_spec("services.transform.handler.handler")


def test_every_function_of_the_template_runs_from_the_bundle_here():
    """A new function in the template needs its own run from the bundle in this file."""
    covered = {REAPER_HANDLER, DEAD_LETTERS.handler, TRANSFORM_HANDLER}
    covered |= {function.handler for function in HANDLERS.values()}
    assert {as_spec(handler) for handler in template_handlers()} == covered


def function_url_event(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """A SageMaker request as a Lambda function URL delivers it (payload 2.0), once
    the URL has checked its IAM signature."""
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {
            "content-type": "application/x-amz-json-1.1",
            "x-amz-target": f"SageMaker.{operation}",
        },
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": json.dumps(request),
        "isBase64Encoded": False,
    }


def model_package(model_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(model_dir / "xgboost-model.json", arcname="xgboost-model.json")
    return buffer.getvalue()


def test_the_sagemaker_api_answers_from_the_bundle(stack, built, model_dir, monkeypatch):
    """CreateModel checks the package in S3 and stores the model in the SageMaker table;
    DescribeModel reads it back: the API's request checks (botocore's service model,
    pydantic), S3 and DynamoDB, all from the bundle and the runtime's boto3."""
    for name, value in (stack.base_env() | stack.sagemaker_env()).items():
        monkeypatch.setenv(name, value)
    bucket = stack.config.bucket
    key = "sagemaker/deployed/model.tar.gz"
    stack.client("s3").put_object(Bucket=bucket, Key=key, Body=model_package(model_dir))
    create = {
        "ModelName": "deployed-xgb",
        "PrimaryContainer": {
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "ModelDataUrl": f"s3://{bucket}/{key}",
        },
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
    }
    runtime = Runtime(
        TRANSFORM_HANDLER, function_name="deployed", timeout_seconds=60, bundle=built["lambda"]
    )
    try:
        runtime.start()
        created = runtime.invoke(function_url_event("CreateModel", create))
        described = runtime.invoke(
            function_url_event("DescribeModel", {"ModelName": "deployed-xgb"})
        )
        unknown = runtime.invoke(function_url_event("DescribeModel", {"ModelName": "nowhere"}))
    finally:
        runtime.stop()
    assert created["statusCode"] == 200, created
    arn = json.loads(created["body"])["ModelArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:model/deployed-xgb"
    assert described["statusCode"] == 200, described
    model = json.loads(described["body"])
    assert model["ModelArn"] == arn
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{key}"
    assert unknown["statusCode"] == 400, unknown
    assert unknown["headers"]["x-amzn-ErrorType"] == "ValidationException"
    assert "Could not find model" in json.loads(unknown["body"])["message"]
    # The stack's own SageMaker API (the working tree's) reads what the bundle stored.
    seen = stack.client("sagemaker").describe_model(ModelName="deployed-xgb")
    assert seen["ModelArn"] == arn
