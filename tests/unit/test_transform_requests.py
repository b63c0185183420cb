"""SageMaker's request checks: each constraint, worded as SageMaker words it."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from services.transform import api, inputs, listing
from services.transform.job_settings import (
    batch_environment,
    described,
    object_settings,
    resolved,
)
from services.transform.requests import (
    CreateModel,
    CreateTransformJob,
    ListTransformJobs,
    check_transform_job,
    instance_types,
    parse,
)
from services.transform.wording import RequestInvalid

JOB: dict[str, Any] = {
    "TransformJobName": "job-1",
    "ModelName": "model-1",
    "TransformInput": {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    },
    "TransformOutput": {"S3OutputPath": "s3://b/out/", "AssembleWith": "Line"},
    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
}


def job(**changes: Any) -> dict[str, Any]:
    """JOB with members changed: ``TransformInput__SplitType="x"`` sets a nested one,
    None removes it."""
    body = copy.deepcopy(JOB)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = body
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return body


def refusal(body: dict[str, Any]) -> str:
    with pytest.raises(RequestInvalid) as caught:
        check_transform_job(parse(CreateTransformJob, body))
    return caught.value.message


def test_a_valid_request_passes_and_keeps_its_members() -> None:
    request = parse(CreateTransformJob, job(Tags=[{"Key": "team", "Value": "ml"}]))
    check_transform_job(request)
    assert request.TransformInput.SplitType == "Line"
    assert request.model_dump(exclude_none=True)["Tags"] == [{"Key": "team", "Value": "ml"}]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"TransformJobName": "my_job"},
            "1 validation error detected: Value 'my_job' at 'transformJobName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: "
            "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
        ),
        (
            {"TransformJobName": "a" * 64},
            f"1 validation error detected: Value '{'a' * 64}' at 'transformJobName' failed to "
            "satisfy constraint: Member must have length less than or equal to 63",
        ),
        (
            {"TransformJobName": None},
            "1 validation error detected: Value null at 'transformJobName' failed to satisfy "
            "constraint: Member must not be null",
        ),
        (
            {"TransformInput__SplitType": "Lines"},
            "Value 'Lines' at 'transformInput.splitType' failed to satisfy constraint: Member "
            "must satisfy enum value set: [None, Line, RecordIO, TFRecord]",
        ),
        (
            {"TransformInput__CompressionType": "Zip"},
            "at 'transformInput.compressionType' failed to satisfy constraint: Member must "
            "satisfy enum value set: [None, Gzip]",
        ),
        (
            {"BatchStrategy": "Multi"},
            "Member must satisfy enum value set: [MultiRecord, SingleRecord]",
        ),
        (
            {"TransformOutput__AssembleWith": "Newline"},
            "at 'transformOutput.assembleWith' failed to satisfy constraint: Member must "
            "satisfy enum value set: [None, Line]",
        ),
        (
            {"DataProcessing": {"JoinSource": "Output"}},
            "at 'dataProcessing.joinSource' failed to satisfy constraint: Member must satisfy "
            "enum value set: [Input, None]",
        ),
        (
            {"TransformInput__DataSource__S3DataSource__S3DataType": "Folder"},
            "at 'transformInput.dataSource.s3DataSource.s3DataType'",
        ),
        (
            {"TransformInput__DataSource__S3DataSource__S3Uri": "ftp://b/in/"},
            "Value 'ftp://b/in/' at 'transformInput.dataSource.s3DataSource.s3Uri' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "^(https|s3)://([^/]+)/?(.*)",
        ),
        (
            {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 3601}},
            "Value '3601' at 'modelClientConfig.invocationsTimeoutInSeconds' failed to satisfy "
            "constraint: Member must have value less than or equal to 3600",
        ),
        (
            {"ModelClientConfig": {"InvocationsTimeoutInSeconds": 0}},
            "Member must have value greater than or equal to 1",
        ),
        (
            {"ModelClientConfig": {"InvocationsMaxRetries": 4}},
            "at 'modelClientConfig.invocationsMaxRetries' failed to satisfy constraint: Member "
            "must have value less than or equal to 3",
        ),
        (
            {"TransformResources__InstanceCount": 0},
            "at 'transformResources.instanceCount' failed to satisfy constraint: Member must "
            "have value greater than or equal to 1",
        ),
        (
            {"MaxPayloadInMB": -1},
            "at 'maxPayloadInMB' failed to satisfy constraint: Member must have value greater "
            "than or equal to 0",
        ),
        (
            {"Environment": {"1BAD": "x"}},
            "Value '{1BAD=x}' at 'environment' failed to satisfy constraint: Map keys must "
            "satisfy constraint: [Member must satisfy regular expression pattern: "
            "^[a-zA-Z_][a-zA-Z0-9_]{0,1023}]",
        ),
        (
            {"Environment": {f"K{i}": "v" for i in range(17)}},
            "at 'environment' failed to satisfy constraint: Member must have length less than "
            "or equal to 16",
        ),
        (
            {"Tags": [{"Key": "ok", "Value": "v"}, {"Key": "", "Value": "v"}]},
            "Value '' at 'tags.2.member.key' failed to satisfy constraint: Member must have "
            "length greater than or equal to 1",
        ),
        (
            {"DataProcessing": {"InputFilter": "$" + "[1]" * 30}},
            "at 'dataProcessing.inputFilter' failed to satisfy constraint: Member must have "
            "length less than or equal to 63",
        ),
        (
            {"DataCaptureConfig": {"GenerateInferenceId": True}},
            "Value null at 'dataCaptureConfig.destinationS3Uri' failed to satisfy constraint: "
            "Member must not be null",
        ),
        (
            {"MaxConcurrentTransforms": "4"},
            "at 'maxConcurrentTransforms' failed to satisfy constraint: Member must be of type int",
        ),
    ],
)
def test_each_constraint_is_worded_as_sagemaker_words_it(
    changes: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(job(**changes))


def test_several_failures_are_counted_and_joined() -> None:
    message = refusal(job(TransformJobName="a_b", TransformInput__SplitType="Lines"))
    assert message.startswith("2 validation errors detected: Value 'a_b' at 'transformJobName'")
    assert "; Value 'Lines' at 'transformInput.splitType'" in message


def test_an_instance_type_sagemaker_does_not_have_is_refused_with_the_list() -> None:
    message = refusal(job(TransformResources__InstanceType="ml.x9.huge"))
    assert message.startswith(
        "1 validation error detected: Value 'ml.x9.huge' at 'transformResources.instanceType' "
        "failed to satisfy constraint: Member must satisfy enum value set: [ml.m4.xlarge"
    )
    assert "ml.m5.large" in instance_types()


@pytest.mark.parametrize("split", ["RecordIO", "TFRecord"])
def test_record_formats_byom_does_not_split_are_refused_by_name(split: str) -> None:
    message = refusal(job(TransformInput__SplitType=split))
    assert message.startswith(f"SplitType {split} is not supported by byom")


@pytest.mark.parametrize("kind", ["AugmentedManifestFile", "Converse"])
def test_data_types_byom_does_not_read_are_refused_by_name(kind: str) -> None:
    message = refusal(job(TransformInput__DataSource__S3DataSource__S3DataType=kind))
    assert message.startswith(f"S3DataType {kind} is not supported by byom")


def test_https_uris_are_refused() -> None:
    message = refusal(job(TransformOutput__S3OutputPath="https://example.com/out"))
    assert "TransformOutput.S3OutputPath 'https://example.com/out'" in message
    assert "s3:// URIs only" in message


def test_max_payload_is_at_most_100_mb() -> None:
    check_transform_job(parse(CreateTransformJob, job(MaxPayloadInMB=100)))
    assert "MaxPayloadInMB 101 is over the limit" in refusal(job(MaxPayloadInMB=101))


def test_concurrency_times_payload_is_at_most_100_mb() -> None:
    check_transform_job(
        parse(CreateTransformJob, job(MaxPayloadInMB=25, MaxConcurrentTransforms=4))
    )
    message = refusal(job(MaxPayloadInMB=26, MaxConcurrentTransforms=4))
    assert message == (
        "The product of MaxConcurrentTransforms (4) and MaxPayloadInMB (26) must not exceed 100 MB."
    )
    # No limit on the payload (0) has no product to check.
    check_transform_job(
        parse(CreateTransformJob, job(MaxPayloadInMB=0, MaxConcurrentTransforms=64))
    )


def test_filters_must_be_selectors_byom_reads() -> None:
    message = refusal(job(DataProcessing={"InputFilter": "$..price"}))
    assert message.startswith("DataProcessing.InputFilter '$..price':")
    check_transform_job(
        parse(
            CreateTransformJob, job(DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"})
        )
    )


def test_create_model_checks_its_container() -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(
            CreateModel,
            {
                "ModelName": "m_1",
                "PrimaryContainer": {
                    "ModelDataUrl": "s3://b/m.tar.gz",
                    "Environment": {"A-B": "1"},
                },
                "ExecutionRoleArn": "not-a-role",
            },
        )
    message = caught.value.message
    assert message.startswith("3 validation errors detected: Value 'm_1' at 'modelName'")
    assert "at 'primaryContainer.environment' failed to satisfy constraint: Map keys" in message
    assert "at 'executionRoleArn' failed to satisfy constraint" in message


def test_list_requests_check_their_enums_and_ranges() -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(ListTransformJobs, {"SortBy": "Size", "MaxResults": 101, "StatusEquals": "Done"})
    message = caught.value.message
    assert message.startswith("3 validation errors detected")
    assert "Member must satisfy enum value set: [Name, CreationTime, Status]" in message
    assert "at 'maxResults' failed to satisfy constraint: Member must have value less" in message
    assert "[InProgress, Completed, Failed, Stopping, Stopped]" in message


def test_describe_shows_the_defaults_sagemaker_shows_and_not_the_unset_limits() -> None:
    values = described(parse(CreateTransformJob, job()))
    assert values["DataProcessing"] == {
        "InputFilter": "$",
        "OutputFilter": "$",
        "JoinSource": "None",
    }
    assert values["TransformInput"]["CompressionType"] == "None"
    assert values["TransformOutput"] == {
        "S3OutputPath": "s3://b/out/",
        "AssembleWith": "Line",
        "KmsKeyId": "",
    }
    for member in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms"):
        assert member not in values


def test_a_job_that_sets_no_limits_runs_with_sagemakers_defaults() -> None:
    request = parse(CreateTransformJob, job())
    values = resolved(request)
    assert values["MaxPayloadInMB"] == 6
    assert values["MaxConcurrentTransforms"] == 1
    assert values["BatchStrategy"] == "MultiRecord"
    assert values["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 600,
        "InvocationsMaxRetries": 3,
    }
    settings = object_settings(values)
    assert settings.max_payload_bytes == 6 * 1024 * 1024
    assert settings.batch_strategy == "MultiRecord"
    assert settings.split_type == "Line"
    assert settings.assemble_with == "Line"
    assert settings.content_type == "text/csv"
    assert settings.input_filter is None  # "$": the whole record
    # The batch variables the request did not set are not passed.
    assert batch_environment(request) == {"SAGEMAKER_BATCH": "true"}


def test_the_batch_variables_carry_what_the_request_sets() -> None:
    request = parse(
        CreateTransformJob,
        job(MaxPayloadInMB=0, BatchStrategy="SingleRecord", MaxConcurrentTransforms=4),
    )
    values = resolved(request)
    assert values["MaxPayloadInMB"] == 0
    assert object_settings(values).max_payload_bytes is None
    assert batch_environment(request) == {
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0",
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "4",
    }


def test_the_api_answers_errors_as_sagemaker_does() -> None:
    status, body, headers = api.answer(
        "CreateTransformJob", json.dumps(job(MaxPayloadInMB=101)).encode()
    )
    assert status == 400
    assert json.loads(body) == {
        "__type": "ValidationException",
        "message": "MaxPayloadInMB 101 is over the limit: it must be at most 100.",
    }
    assert ("x-amzn-ErrorType", "ValidationException") in headers
    assert ("Content-Type", "application/x-amz-json-1.1") in headers
    assert api.handle("CreateTransformJob", b"{not json")[0] == 400
    assert (
        json.loads(api.handle("CreateTransformJob", b"[]")[1])["__type"] == "SerializationException"
    )
    assert api.operation_of("SageMaker.CreateEndpoint") is None  # moto's
    assert api.operation_of("SageMaker.StopTransformJob") == "StopTransformJob"


def test_lists_page_through_every_item_once() -> None:
    items = list(range(23))
    seen: list[int] = []
    token = None
    while True:
        chosen, token = listing.page(
            items, lambda item: item, descending=True, max_results=10, next_token=token
        )
        seen += chosen
        if token is None:
            break
    assert seen == sorted(items, reverse=True)
    with pytest.raises(RequestInvalid, match="NextToken is not valid"):
        listing.page(items, lambda item: item, descending=False, max_results=5, next_token="!!")


def test_the_lambda_answers_a_function_url_event_as_sagemaker_does() -> None:
    from services.transform.handler import handler

    body = json.dumps(job(TransformJobName="bad_name")).encode()
    answer = handler(
        {
            "headers": {"X-Amz-Target": "SageMaker.CreateTransformJob"},
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        },
        None,
    )
    assert answer["statusCode"] == 400
    assert answer["headers"]["x-amzn-ErrorType"] == "ValidationException"
    assert json.loads(answer["body"])["message"].startswith(
        "1 validation error detected: Value 'bad_name' at 'transformJobName'"
    )
    unknown = handler({"headers": {"x-amz-target": "SageMaker.CreateEndpoint"}, "body": "{}"}, None)
    assert unknown["statusCode"] == 400
    assert json.loads(unknown["body"])["__type"] == "UnknownOperationException"


class _Listing:
    """list_objects_v2's paginator over a few keys, as S3 lists them (key order)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_paginator(self, name: str) -> _Listing:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        chosen = sorted(k for k in self.keys if k.startswith(Prefix))
        return [{"Contents": [{"Key": k, "ETag": '"e"', "Size": 1} for k in chosen]}]


@pytest.mark.parametrize(
    ("uri", "relatives"),
    [
        # The key after the prefix as a folder, else after its last "/": a folder
        # prefix, a key's own name, and a prefix without its slash (SageMaker's Iris
        # notebook: ".../batch_input" gives iris_sample_X_0.csv.out), which also lists
        # a name it ends inside of.
        ("s3://b/in/", ["a.csv", "b/c.csv"]),
        ("s3://b/in/a.csv", ["a.csv"]),
        ("s3://b/in", ["a.csv", "b/c.csv", "inside/d.csv"]),
    ],
)
def test_each_object_under_a_prefix_in_key_order_and_its_relative_name(
    uri: str, relatives: list[str]
) -> None:
    s3 = _Listing(["in/b/c.csv", "in/a.csv", "in/folder/", "inside/d.csv", "other/e.csv"])
    found = inputs.under_prefix(s3, uri, limit=10)
    assert [obj.relative for obj in found] == relatives


def test_outputs_go_under_the_output_path_with_out() -> None:
    assert inputs.output_key("s3://out-bucket/results", "b/c.csv") == (
        "out-bucket",
        "results/b/c.csv.out",
    )
    assert inputs.output_key("s3://out-bucket/results/", "a.csv")[1] == "results/a.csv.out"
    assert inputs.output_key("s3://out-bucket", "a.csv")[1] == "a.csv.out"


def test_a_prefix_past_the_limit_is_refused_and_an_empty_one_named() -> None:
    s3 = _Listing([f"in/{i}.csv" for i in range(5)])
    with pytest.raises(RequestInvalid, match="more than 3 objects"):
        inputs.under_prefix(s3, "s3://b/in/", limit=3)
    with pytest.raises(inputs.NoInput, match='No S3 objects found under S3 URL "s3://b/none/"'):
        inputs.under_prefix(s3, "s3://b/none/", limit=3)
