"""byom transform: the SageMaker request it builds, signs, sends and reads back.

The signature is checked by an independent SigV4 verifier (the algorithm as AWS
documents it, not botocore's), and the command runs against a server on a real
socket that answers as SageMaker's JSON protocol does.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.credentials import Credentials
from typer.testing import CliRunner

from cli import transform
from cli.main import app
from tests.sigv4 import verify_sigv4

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token"
CREDENTIALS = Credentials(KEY, SECRET, TOKEN)
ARN = "arn:aws:sagemaker:us-east-1:1:transform-job/j"
FUNCTION_URL = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/"
JOB = {
    "TransformJobName": "churn-2026-12-06",
    "ModelName": "xgb-churn",
    "TransformInput": {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/input/churn/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    },
    "TransformOutput": {"S3OutputPath": "s3://b/output/churn/", "AssembleWith": "Line"},
    "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
}


def prepared(api: transform.Api, operation: str, params: dict[str, Any]) -> AWSPreparedRequest:
    return transform.build_request(api, operation, params, CREDENTIALS).prepare()


def test_function_url_request_is_signed_for_lambda_with_the_body_hash() -> None:
    api = transform.Api(url=FUNCTION_URL, service="lambda", region="eu-west-1", local=False)
    request = prepared(api, "CreateTransformJob", JOB)
    assert request.method == "POST"
    assert request.url == FUNCTION_URL
    assert request.headers["X-Amz-Target"] == "SageMaker.CreateTransformJob"
    assert request.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert isinstance(request.body, bytes)
    assert json.loads(request.body) == JOB
    assert request.headers["X-Amz-Content-SHA256"] == hashlib.sha256(request.body).hexdigest()
    assert request.headers["X-Amz-Security-Token"] == TOKEN
    scope = verify_sigv4("POST", request.url, dict(request.headers), request.body, SECRET)
    assert scope["service"] == "lambda" and scope["region"] == "eu-west-1"
    assert scope["access_key"] == KEY
    signed = scope["signed"].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "x-amz-content-sha256"} <= set(signed)
    # A changed body no longer matches the signature.
    with pytest.raises(AssertionError, match="does not verify"):
        verify_sigv4("POST", request.url, dict(request.headers), request.body + b" ", SECRET)


def test_local_request_is_signed_as_the_aws_cli_signs_sagemaker() -> None:
    api = transform.local_api("http://127.0.0.1:4566", "us-east-1")
    assert api.url == "http://127.0.0.1:4566/"
    request = prepared(api, "DescribeTransformJob", {"TransformJobName": "j"})
    assert "X-Amz-Content-SHA256" not in request.headers
    assert isinstance(request.body, bytes)
    scope = verify_sigv4("POST", request.url, dict(request.headers), request.body, SECRET)
    assert scope["service"] == "sagemaker" and scope["region"] == "us-east-1"


def test_request_json_is_read_as_the_aws_cli_reads_it(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(JOB))
    assert transform.read_request(f"file://{job}") == JOB
    assert transform.read_request(json.dumps(JOB)) == JOB
    with pytest.raises(transform.TransformCommandError, match="cannot read"):
        transform.read_request(f"file://{tmp_path / 'missing.json'}")
    with pytest.raises(transform.TransformCommandError, match="not JSON"):
        transform.read_request("{")
    with pytest.raises(transform.TransformCommandError, match="JSON object"):
        transform.read_request("[]")


def test_answers_and_errors_are_read_as_botocore_reads_them() -> None:
    body = json.dumps(
        {
            "TransformJobName": "j",
            "TransformJobArn": "arn:aws:sagemaker:us-east-1:123456789012:transform-job/j",
            "TransformJobStatus": "Completed",
            "CreationTime": 1796556000.5,
        }
    ).encode()
    answer = transform.parse_answer("DescribeTransformJob", 200, {}, body)
    assert answer["CreationTime"] == datetime(2026, 12, 6, 11, 20, 0, 500000, tzinfo=UTC)
    printed = json.loads(transform.answer_json(answer))
    assert printed["CreationTime"] == "2026-12-06T11:20:00.500000+00:00"
    error = json.dumps({"__type": "ValidationException", "message": "Could not find model"})
    with pytest.raises(transform.ApiError) as raised:
        transform.parse_answer("CreateTransformJob", 400, {}, error.encode())
    assert (raised.value.code, raised.value.message) == (
        "ValidationException",
        "Could not find model",
    )
    assert str(raised.value) == "CreateTransformJob: ValidationException: Could not find model"
    # A function URL's own refusal names its error in a header, as Lambda sends it.
    with pytest.raises(transform.ApiError) as denied:
        transform.parse_answer(
            "DescribeTransformJob",
            403,
            {"x-amzn-ErrorType": "AccessDeniedException"},
            b'{"Message":"Forbidden"}',
        )
    assert (denied.value.code, denied.value.message) == ("AccessDeniedException", "Forbidden")


def test_stack_without_the_api_output_is_named() -> None:
    with pytest.raises(transform.TransformCommandError, match="SageMakerApiUrl"):
        transform.api_from_outputs({"Region": "eu-west-1"}, region=None)
    api = transform.api_from_outputs(
        {"Region": "eu-west-1", "SageMakerApiUrl": FUNCTION_URL}, region="us-east-1"
    )
    assert api == transform.Api(FUNCTION_URL, "lambda", "eu-west-1", local=False)


# ------------------------------------------------------------------ over a socket


class FakeSageMaker(BaseHTTPRequestHandler):
    """Checks each request's signature and answers as SageMaker's JSON protocol does."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        url = f"http://{self.headers['Host']}{self.path}"
        scope = verify_sigv4("POST", url, dict(self.headers.items()), body, "test")
        operation = self.headers["X-Amz-Target"].removeprefix("SageMaker.")
        self.received.append({"operation": operation, "scope": scope, "body": json.loads(body)})
        answer: dict[str, str]
        if operation == "CreateTransformJob":
            status, answer = 200, {"TransformJobArn": ARN}
        elif operation == "StopTransformJob":  # an operation without output: an empty body
            status, answer = 200, {}
        else:
            status, answer = 400, {"__type": "ResourceNotFound", "message": "Could not find job"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("BYOM_STACK", raising=False)
    FakeSageMaker.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSageMaker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_command_sends_the_request_and_prints_the_answer(
    fake_sagemaker: str, tmp_path: Path
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(JOB))
    runner = CliRunner()
    created = runner.invoke(
        app, ["--endpoint-url", fake_sagemaker, "transform", "--cli-input-json", f"file://{job}"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {"TransformJobArn": ARN}
    missing = runner.invoke(app, ["--endpoint-url", fake_sagemaker, "transform", "describe", "j"])
    assert missing.exit_code == 1
    assert "DescribeTransformJob: ResourceNotFound: Could not find job" in missing.output
    stopped = runner.invoke(app, ["--endpoint-url", fake_sagemaker, "transform", "stop", "j"])
    assert stopped.exit_code == 0, stopped.output
    assert "stopping j" in stopped.stdout
    (create, describe, stop) = FakeSageMaker.received
    assert stop["operation"] == "StopTransformJob"
    assert create == {
        "operation": "CreateTransformJob",
        "scope": create["scope"] | {"service": "sagemaker", "region": "us-east-1"},
        "body": JOB,
    }
    assert describe["body"] == {"TransformJobName": "j"}


def test_command_without_a_local_stack_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BYOM_STACK", raising=False)
    # A port nothing listens on: bind one, then close it.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        app, ["--endpoint-url", f"http://127.0.0.1:{port}", "transform", "stop", "j"]
    )
    assert result.exit_code == 2
    assert "is the local stack up" in result.output
