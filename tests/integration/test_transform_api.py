"""SageMaker's API on the local stack's endpoint, through boto3's own sagemaker client.

The stack here is the local AWS only (moto with byom's SageMaker API, and byom's
resources): nothing consumes the ingest queue, so each test reads the transform
objects a job sent there.
"""

from __future__ import annotations

import http.server
import io
import json
import tarfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from infra.local.processes import free_port
from infra.local.resources import _queue_arn, _route
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from shared import aws
from shared.settings import get_settings
from shared.transform import TransformObject, object_job_id
from shared.transform_store import TransformStore

pytestmark = pytest.mark.integration

BUCKET = "byom-local"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
PACKAGE = "sm-models/xgb/model.tar.gz"
# What the container answers at GET /execution-parameters (SageMaker's spelling).
EXECUTION_PARAMETERS = {
    "MaxConcurrentTransforms": 4,
    "BatchStrategy": "SINGLE_RECORD",
    "MaxPayloadInMB": 10,
}


class _Parameters(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(EXECUTION_PARAMETERS).encode()
        self.send_response(200 if self.path == "/execution-parameters" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("transform-api")
    stack = LocalStack(StackConfig(model_dir=logs, log_dir=logs))
    # A stand-in container on the model server's port: its execution parameters.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Parameters)
    stack.model_port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stack.start_aws_only()
        yield stack
    finally:
        stack.stop()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def sm(stack):
    return stack.client("sagemaker")


# The model's package: its own files, and a settings member of its own, which
# registration replaces (byom writes the container settings).
PACKAGE_FILES = {
    "xgboost-model.json": b"{}",
    "code/inference.py": b"def model_fn(model_dir):\n    return None\n",
    ".byom-container.json": b'{"environment": {"FROM_THE_USER": "1"}}',
}


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def members(s3, key: str) -> dict[str, bytes]:
    """The files of the tar.gz at `key` in the bucket."""
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {
            member.name: archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isreg()
        }


@pytest.fixture(scope="module")
def s3(stack):
    client = stack.client("s3")
    client.put_object(Bucket=BUCKET, Key=PACKAGE, Body=tar_gz(PACKAGE_FILES))
    return client


class Events:
    """SageMaker's state-change events on the default bus, as a subscriber gets them."""

    def __init__(self, stack: LocalStack) -> None:
        self.sqs = stack.client("sqs")
        self.url = self.sqs.create_queue(QueueName="sagemaker-events")["QueueUrl"]
        _route(
            stack.client("events"),
            "sagemaker-transform-events",
            {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Transform Job State Change"]},
            _queue_arn(self.sqs, self.url),
        )
        self.seen: list[dict[str, Any]] = []

    def of(self, name: str, status: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.seen:
                detail = event["detail"]
                if detail["TransformJobName"] == name and detail["TransformJobStatus"] == status:
                    return event
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        raise TimeoutError(f"no {status} event for {name}")

    def statuses(self, name: str) -> list[str]:
        return [
            e["detail"]["TransformJobStatus"]
            for e in self.seen
            if e["detail"]["TransformJobName"] == name
        ]


@pytest.fixture(scope="module")
def events(stack) -> Events:
    return Events(stack)


def ingest_objects(
    stack: LocalStack, name: str, count: int, timeout: float = 30
) -> list[TransformObject]:
    """The transform objects job ``name`` sent to ingest, in index order."""
    sqs = stack.client("sqs")
    assert stack.resources is not None
    url = stack.resources.queue_urls["ingest"]
    found: dict[int, TransformObject] = {}
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            obj = TransformObject.model_validate_json(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if obj.transform_job_name == name:
                found[obj.index] = obj
    assert len(found) == count, f"{len(found)} of {count} objects of {name} reached ingest"
    return [found[index] for index in sorted(found)]


def create_model(sm, name: str, **container: Any) -> str:
    definition = {
        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "ModelDataUrl": f"s3://{BUCKET}/{PACKAGE}",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
    } | container
    arn: str = sm.create_model(ModelName=name, PrimaryContainer=definition, ExecutionRoleArn=ROLE)[
        "ModelArn"
    ]
    return arn


def job_request(name: str, model: str, uri: str, **members: Any) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/transform-out/{name}",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    } | members


def put_objects(s3, keys: list[str]) -> None:
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"1,2,3\n4,5,6\n")


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = exc.value.response["Error"]
    return error["Code"], error["Message"]


def test_models_are_created_described_listed_and_deleted(sm, s3) -> None:
    arn = create_model(sm, "Churn-Model", Environment={"SAGEMAKER_PROGRAM": "serve.py", "A": "1"})
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:model/churn-model"

    described = sm.describe_model(ModelName="Churn-Model")
    assert described["ModelName"] == "Churn-Model"
    assert described["ModelArn"] == arn
    assert described["ExecutionRoleArn"] == ROLE
    assert described["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_PROGRAM": "serve.py",
        "A": "1",
    }
    assert described["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/{PACKAGE}"
    assert abs(described["CreationTime"] - datetime.now(UTC)) < timedelta(minutes=5)

    with pytest.raises(ClientError) as again:
        create_model(sm, "Churn-Model")
    assert error_of(again) == (
        "ValidationException",
        f'Cannot create already existing model "{arn}".',
    )

    create_model(sm, "Other-Model")
    names = [m["ModelName"] for m in sm.list_models(NameContains="churn")["Models"]]
    assert names == ["Churn-Model"]
    ordered = sm.list_models(SortBy="Name", SortOrder="Ascending")["Models"]
    assert [m["ModelName"] for m in ordered] == sorted(m["ModelName"] for m in ordered)

    sm.delete_model(ModelName="Churn-Model")
    for call in (sm.describe_model, sm.delete_model):
        with pytest.raises(ClientError) as gone:
            call(ModelName="Churn-Model")
        assert error_of(gone) == ("ValidationException", f'Could not find model "{arn}".')


def test_a_model_needs_its_model_data(sm, s3) -> None:
    with pytest.raises(ClientError) as missing:
        create_model(sm, "no-data", ModelDataUrl=f"s3://{BUCKET}/nowhere/model.tar.gz")
    assert error_of(missing) == (
        "ValidationException",
        f"Could not find model data at s3://{BUCKET}/nowhere/model.tar.gz.",
    )


def test_a_transform_job_sends_each_object_under_its_prefix_to_ingest(
    stack, sm, s3, events
) -> None:
    create_model(sm, "prefix-model")
    put_objects(s3, ["tin/p/b.csv", "tin/p/a.csv", "tin/p/sub/c.csv", "tin/p-other/d.csv"])
    s3.put_object(Bucket=BUCKET, Key="tin/p/folder/", Body=b"")  # a folder marker
    request = job_request(
        "prefix-job",
        "prefix-model",
        f"s3://{BUCKET}/tin/p/",
        Environment={"JOB_SETTING": "on", "SAGEMAKER_PROGRAM": "job.py"},
        MaxPayloadInMB=2,
        BatchStrategy="MultiRecord",
        MaxConcurrentTransforms=3,
        ModelClientConfig={"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1},
        DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        Tags=[{"Key": "team", "Value": "ml"}],
    )
    arn = sm.create_transform_job(**request)["TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:transform-job/prefix-job"

    objects = ingest_objects(stack, "prefix-job", 3)
    assert [o.key for o in objects] == ["tin/p/a.csv", "tin/p/b.csv", "tin/p/sub/c.csv"]
    assert [o.output_key for o in objects] == [
        "transform-out/prefix-job/a.csv.out",
        "transform-out/prefix-job/b.csv.out",
        "transform-out/prefix-job/sub/c.csv.out",
    ]
    first = objects[0]
    assert (first.objects, first.bucket, first.output_bucket, first.size) == (3, BUCKET, BUCKET, 12)
    assert first.etag == s3.head_object(Bucket=BUCKET, Key="tin/p/a.csv")["ETag"].strip('"')
    settings = first.settings
    assert settings.batch_strategy == "MultiRecord"
    assert settings.max_payload_bytes == 2 * 1024 * 1024
    assert settings.max_concurrent == 3
    assert (settings.split_type, settings.assemble_with, settings.content_type) == (
        "Line",
        "Line",
        "text/csv",
    )
    assert (settings.input_filter, settings.output_filter, settings.join_source) == (
        "$[1:]",
        "$[0,-1]",
        "Input",
    )
    assert (settings.invocations_timeout_seconds, settings.invocations_max_retries) == (30, 1)
    # The environment is not in the messages: it is inside the registered package.
    assert first.environment == {}
    name, version, package = first.target_model.split("/")
    assert (name, package) == ("prefix-model", "model.tar.gz")
    registered = members(s3, f"models/{first.target_model}")
    # The package's own files, and the container settings (the user's copy replaced):
    # the job's Environment over the model's, and the batch variables the request set.
    assert {key: registered[key] for key in PACKAGE_FILES if key != ".byom-container.json"} == {
        key: data for key, data in PACKAGE_FILES.items() if key != ".byom-container.json"
    }
    assert json.loads(registered[".byom-container.json"]) == {
        "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        "environment": {
            "SAGEMAKER_PROGRAM": "job.py",
            "JOB_SETTING": "on",
            "SAGEMAKER_BATCH": "true",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "2",
            "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
            "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
        },
    }
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/prefix-model/{version}/container")[
        "KeyCount"
    ]

    described = sm.describe_transform_job(TransformJobName="prefix-job")
    assert described["TransformJobStatus"] == "InProgress"
    assert described["TransformJobArn"] == arn
    assert described["ModelName"] == "prefix-model"
    assert described["TransformInput"] == request["TransformInput"] | {"CompressionType": "None"}
    assert described["TransformOutput"] == request["TransformOutput"] | {"KmsKeyId": ""}
    assert described["DataProcessing"] == request["DataProcessing"]
    assert described["MaxPayloadInMB"] == 2
    assert described["Environment"] == request["Environment"]
    assert described["CreationTime"] <= described["TransformStartTime"]
    assert "TransformEndTime" not in described

    event = events.of("prefix-job", "InProgress")
    assert event["resources"] == [arn]
    assert event["detail"]["Tags"] == {"team": "ml"}
    assert event["detail"]["CreationTime"].endswith("Z")


def test_a_manifest_names_its_objects_in_its_order(stack, sm, s3) -> None:
    create_model(sm, "manifest-model")
    put_objects(s3, ["manifest-data/x/2.csv", "manifest-data/x/1.csv"])
    manifest = [{"prefix": f"s3://{BUCKET}/manifest-data/"}, "x/2.csv", "x/1.csv"]
    s3.put_object(Bucket=BUCKET, Key="manifests/m.json", Body=json.dumps(manifest).encode())
    request = job_request("manifest-job", "manifest-model", f"s3://{BUCKET}/manifests/m.json")
    request["TransformInput"]["DataSource"]["S3DataSource"]["S3DataType"] = "ManifestFile"
    sm.create_transform_job(**request)
    objects = ingest_objects(stack, "manifest-job", 2)
    assert [(o.key, o.output_key) for o in objects] == [
        ("manifest-data/x/2.csv", "transform-out/manifest-job/x/2.csv.out"),
        ("manifest-data/x/1.csv", "transform-out/manifest-job/x/1.csv.out"),
    ]


def test_the_containers_execution_parameters_fill_what_the_request_leaves_unset(
    stack, sm, s3
) -> None:
    create_model(sm, "params-model")
    put_objects(s3, ["params-in/a.csv"])
    sm.create_transform_job(
        **job_request("params-job", "params-model", f"s3://{BUCKET}/params-in/")
    )
    settings = ingest_objects(stack, "params-job", 1)[0].settings
    assert settings.max_concurrent == 4
    assert settings.batch_strategy == "SingleRecord"
    assert settings.max_payload_bytes == 10 * 1024 * 1024
    described = sm.describe_transform_job(TransformJobName="params-job")
    assert "BatchStrategy" not in described and "MaxPayloadInMB" not in described


def test_names_are_unique_and_models_must_exist(sm, s3) -> None:
    create_model(sm, "unique-model")
    put_objects(s3, ["unique-in/a.csv"])
    request = job_request("unique-job", "unique-model", f"s3://{BUCKET}/unique-in/")
    sm.create_transform_job(**request)
    with pytest.raises(sm.exceptions.ResourceInUse) as taken:
        sm.create_transform_job(**request)
    assert "a job with this name already exists" in error_of(taken)[1]

    with pytest.raises(ClientError) as unknown:
        sm.create_transform_job(
            **job_request("orphan-job", "no-such-model", f"s3://{BUCKET}/unique-in/")
        )
    assert error_of(unknown) == (
        "ValidationException",
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model".',
    )


def test_the_server_refuses_what_the_client_lets_through(sm, s3) -> None:
    create_model(sm, "checks-model")
    request = job_request("checks-job", "checks-model", f"s3://{BUCKET}/unique-in/")
    request["TransformInput"]["SplitType"] = "RecordIO"
    with pytest.raises(ClientError) as recordio:
        sm.create_transform_job(**request)
    code, message = error_of(recordio)
    assert code == "ValidationException"
    assert message.startswith("SplitType RecordIO is not supported by byom")

    with pytest.raises(ClientError) as name:
        sm.create_transform_job(**job_request("bad_name", "checks-model", f"s3://{BUCKET}/x/"))
    assert error_of(name)[1].startswith(
        "1 validation error detected: Value 'bad_name' at 'transformJobName' failed to satisfy"
    )


def test_an_empty_prefix_fails_the_job_as_sagemaker_does(sm, s3, events) -> None:
    create_model(sm, "empty-model")
    uri = f"s3://{BUCKET}/nothing-here/"
    sm.create_transform_job(**job_request("empty-job", "empty-model", uri))
    described = sm.describe_transform_job(TransformJobName="empty-job")
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"].startswith(
        f'ClientError: No S3 objects found under S3 URL "{uri}"'
    )
    assert "TransformEndTime" in described
    assert events.of("empty-job", "Failed")["detail"]["FailureReason"] == described["FailureReason"]


def test_lists_filter_sort_and_page(sm, s3) -> None:
    create_model(sm, "list-model")
    put_objects(s3, ["list-in/a.csv"])
    before = datetime.now(UTC) - timedelta(seconds=1)
    for name in ("list-c", "list-a", "list-b"):
        sm.create_transform_job(**job_request(name, "list-model", f"s3://{BUCKET}/list-in/"))
    sm.create_transform_job(**job_request("list-empty", "list-model", f"s3://{BUCKET}/list-none/"))

    def names(**filters: Any) -> list[str]:
        return [
            s["TransformJobName"]
            for s in sm.list_transform_jobs(**filters)["TransformJobSummaries"]
        ]

    assert names(NameContains="LIST-", SortBy="Name", SortOrder="Ascending") == [
        "list-a", "list-b", "list-c", "list-empty",
    ]  # fmt: skip
    assert names(NameContains="list-", SortBy="CreationTime", SortOrder="Descending") == [
        "list-empty", "list-b", "list-a", "list-c",
    ]  # fmt: skip
    assert names(NameContains="list-", StatusEquals="Failed") == ["list-empty"]
    assert names(NameContains="list-", SortBy="Status", SortOrder="Ascending")[0] == "list-empty"
    assert (
        names(NameContains="list-", CreationTimeAfter=datetime.now(UTC) + timedelta(hours=1)) == []
    )
    assert (
        len(names(NameContains="list-", CreationTimeAfter=before, LastModifiedTimeAfter=before))
        == 4
    )
    assert names(NameContains="list-", CreationTimeBefore=before) == []

    paged: list[str] = []
    answer = sm.list_transform_jobs(
        NameContains="list-", SortBy="Name", SortOrder="Ascending", MaxResults=3
    )
    paged += [s["TransformJobName"] for s in answer["TransformJobSummaries"]]
    assert "NextToken" in answer
    answer = sm.list_transform_jobs(
        NameContains="list-",
        SortBy="Name",
        SortOrder="Ascending",
        MaxResults=3,
        NextToken=answer["NextToken"],
    )
    paged += [s["TransformJobName"] for s in answer["TransformJobSummaries"]]
    assert "NextToken" not in answer
    assert paged == ["list-a", "list-b", "list-c", "list-empty"]
    # boto3's paginator walks the same tokens.
    pages = sm.get_paginator("list_transform_jobs").paginate(
        NameContains="list-", PaginationConfig={"PageSize": 1}
    )
    assert (
        sorted(s["TransformJobName"] for page in pages for s in page["TransformJobSummaries"])
        == paged
    )

    failed = sm.list_transform_jobs(NameContains="list-empty")["TransformJobSummaries"][0]
    assert failed["FailureReason"].startswith("ClientError: No S3 objects found")
    assert "TransformEndTime" in failed and "LastModifiedTime" in failed


def test_a_stopped_job_ends_stopped_and_the_waiter_returns(stack, sm, s3, events) -> None:
    create_model(sm, "stop-model")
    put_objects(s3, ["stop-in/a.csv", "stop-in/b.csv"])
    sm.create_transform_job(**job_request("stop-job", "stop-model", f"s3://{BUCKET}/stop-in/"))
    ingest_objects(stack, "stop-job", 2)
    sm.stop_transform_job(TransformJobName="stop-job")
    # No object had been planned: each has ended, so the job is Stopped at once.
    sm.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="stop-job", WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    described = sm.describe_transform_job(TransformJobName="stop-job")
    assert described["TransformJobStatus"] == "Stopped"
    assert described["TransformEndTime"] >= described["TransformStartTime"]
    events.of("stop-job", "Stopped")
    assert events.statuses("stop-job") == ["InProgress", "Stopping", "Stopped"]
    sm.stop_transform_job(TransformJobName="stop-job")  # again: nothing changes
    assert sm.describe_transform_job(TransformJobName="stop-job")["TransformJobStatus"] == "Stopped"


def test_unknown_jobs_are_errors_the_waiter_stops_on(sm) -> None:
    with pytest.raises(ClientError) as described:
        sm.describe_transform_job(TransformJobName="never-made")
    assert error_of(described) == (
        "ValidationException",
        "Could not find requested job with name never-made",
    )
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName="never-made", WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.stop_transform_job(TransformJobName="never-made")


@pytest.fixture
def byom_clients(stack, monkeypatch):
    """This process's byom clients pointed at the stack, as a service's are."""
    for name, value in stack.base_env().items():
        if name.startswith(("AWS_", "BYOM_")):
            monkeypatch.setenv(name, value)
    for client in (aws.s3, aws.sqs, aws.dynamodb, aws.events):
        client.cache_clear()
    get_settings.cache_clear()
    yield
    for client in (aws.s3, aws.sqs, aws.dynamodb, aws.events):
        client.cache_clear()
    get_settings.cache_clear()


def test_objects_ending_settle_the_job_once(stack, sm, s3, events, byom_clients) -> None:
    create_model(sm, "ends-model")
    put_objects(s3, ["ends-in/a.csv", "ends-in/b.csv", "ends-in/c.csv"])
    for name in ("ends-good", "ends-bad"):
        sm.create_transform_job(**job_request(name, "ends-model", f"s3://{BUCKET}/ends-in/"))
    store = TransformStore()

    record = store.get("ends-good")
    assert record is not None
    assert record.object_jobs == [object_job_id(record.arn, index) for index in range(3)]
    for _ in range(2):  # counted once
        counted = store.object_ended("ends-good", 0, failed=False)
        assert counted is not None and counted.objects_ended == 1
    store.object_ended("ends-good", 2, failed=False)
    assert (
        sm.describe_transform_job(TransformJobName="ends-good")["TransformJobStatus"]
        == "InProgress"
    )
    settled = store.object_ended("ends-good", 1, failed=False)
    assert settled is not None and settled.status.value == "Completed"
    described = sm.describe_transform_job(TransformJobName="ends-good")
    assert described["TransformJobStatus"] == "Completed"
    assert described["TransformEndTime"] >= described["TransformStartTime"]
    assert "FailureReason" not in described
    events.of("ends-good", "Completed")

    store.object_ended(
        "ends-bad", 1, failed=True, reason="ClientError: ends-in/b.csv, line 2, column 3: bad"
    )
    store.object_ended("ends-bad", 0, failed=True, reason="a later reason")
    settled = store.object_ended("ends-bad", 2, failed=False)
    assert settled is not None and settled.objects_failed == 2
    described = sm.describe_transform_job(TransformJobName="ends-bad")
    assert described["TransformJobStatus"] == "Failed"
    assert described["FailureReason"] == "ClientError: ends-in/b.csv, line 2, column 3: bad"
    assert events.of("ends-bad", "Failed")["detail"]["FailureReason"] == described["FailureReason"]

    # A late or repeated end changes nothing and sends no second event.
    store.object_ended("ends-bad", 2, failed=True, reason="late")
    events.of("ends-bad", "InProgress")
    assert events.statuses("ends-good") == ["InProgress", "Completed"]
    assert store.object_ended("no-such-job", 0, failed=False) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "evil.example"},
    ],
)
def test_the_loopback_guard_stands_before_the_sagemaker_api(stack, headers) -> None:
    request = urllib.request.Request(
        stack.endpoint_url + "/",
        data=b"{}",
        method="POST",
        headers={
            "X-Amz-Target": "SageMaker.ListTransformJobs",
            "Content-Type": "application/x-amz-json-1.1",
        }
        | headers,
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    refused.value.close()
    # The same request from this machine's own client is answered.
    own = urllib.request.Request(
        stack.endpoint_url + "/",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Target": "SageMaker.ListTransformJobs"},
    )
    with urllib.request.urlopen(own, timeout=10) as answer:
        assert "TransformJobSummaries" in json.loads(answer.read())


def test_names_are_unique_whatever_their_case(stack, sm, s3) -> None:
    # SageMaker's ARNs carry names in lower case: "Case-Job" and "case-job" would be one
    # job's ARN, and so one set of object jobs.
    create_model(sm, "Case-Model")
    with pytest.raises(ClientError) as model_taken:
        create_model(sm, "case-model")
    assert error_of(model_taken)[1].startswith("Cannot create already existing model")
    put_objects(s3, ["case-in/a.csv"])
    sm.create_transform_job(**job_request("Case-Job", "Case-Model", f"s3://{BUCKET}/case-in/"))
    with pytest.raises(sm.exceptions.ResourceInUse):
        sm.create_transform_job(**job_request("case-job", "case-model", f"s3://{BUCKET}/case-in/"))
    described = sm.describe_transform_job(TransformJobName="CASE-JOB")
    assert described["TransformJobName"] == "Case-Job"
    assert described["ModelName"] == "Case-Model"


def test_jobs_with_different_environments_get_different_targets(stack, sm, s3) -> None:
    """The merged environment (model, job, batch variables) is inside the registered
    package, and the version derives from it: a job's own settings reach its model."""
    create_model(sm, "env-model")
    put_objects(s3, ["env-in/a.csv"])
    targets = {}
    jobs: tuple[tuple[str, dict[str, Any]], ...] = (
        ("env-job-a", {"Environment": {"COLOUR": "red"}}),
        ("env-job-b", {"Environment": {"COLOUR": "blue"}}),
        ("env-job-c", {"Environment": {"COLOUR": "red"}, "BatchStrategy": "SingleRecord"}),
        ("env-job-d", {"Environment": {"COLOUR": "red"}}),
    )
    for name, members_ in jobs:
        sm.create_transform_job(
            **job_request(name, "env-model", f"s3://{BUCKET}/env-in/", **members_)
        )
        (obj,) = ingest_objects(stack, name, 1)
        targets[name] = obj.target_model
        settings = json.loads(members(s3, f"models/{obj.target_model}")[".byom-container.json"])
        assert settings["environment"]["COLOUR"] == members_["Environment"]["COLOUR"]
        assert settings["environment"]["SAGEMAKER_BATCH"] == "true"
    assert len({targets["env-job-a"], targets["env-job-b"], targets["env-job-c"]}) == 3
    assert targets["env-job-d"] == targets["env-job-a"]  # the same settings: registered once


def test_byoms_own_prefixes_are_refused_as_locations(sm, s3) -> None:
    create_model(sm, "where-model")
    for uri in (
        f"s3://{BUCKET}/input/churn/",
        f"s3://{BUCKET}/staging/x/",
        f"s3://{BUCKET}/models/m/",
        f"s3://{BUCKET}/",  # the bucket's root lists input/ too
    ):
        with pytest.raises(ClientError) as refused:
            sm.create_transform_job(**job_request("where-job", "where-model", uri))
        code, message = error_of(refused)
        assert code == "ValidationException"
        assert "TransformInput.DataSource.S3DataSource.S3Uri" in message
        assert "which byom keeps for itself" in message and "transform/" in message
    for path in (f"s3://{BUCKET}/input", f"s3://{BUCKET}/staging/out/", f"s3://{BUCKET}/models"):
        request = job_request("where-job", "where-model", f"s3://{BUCKET}/where-in/")
        request["TransformOutput"]["S3OutputPath"] = path
        with pytest.raises(ClientError) as refused:
            sm.create_transform_job(**request)
        assert "TransformOutput.S3OutputPath" in error_of(refused)[1]
    with pytest.raises(ClientError):  # nothing was created by the refusals
        sm.describe_transform_job(TransformJobName="where-job")
