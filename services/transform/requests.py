"""The SageMaker requests byom serves, checked as SageMaker checks them.

A SageMaker client checks little (botocore only types and required members; the
AWS CLI the same), so every constraint of SageMaker's API model is checked here:
lengths, patterns, enums and ranges (:mod:`pydantic` models, named as SageMaker
names the members), then the rules that tie members together
(:func:`check_transform_job`). A failure is a :class:`RequestInvalid` whose
message is worded as SageMaker words it ("1 validation error detected: Value 'x'
at 'transformJobName' failed to satisfy constraint: ...").

Members SageMaker has and byom does not act on (VPC, KMS keys, tags, experiment)
are checked and kept, so Describe answers with them.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, TypeVar

import botocore.session
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from pydantic import StringConstraints as Text

from services.transform.wording import RequestInvalid, constraint_message, coral_message
from shared.selectors import SelectorError, parse_selector


def _text(pattern: str | None = None, *, min_length: int = 0, max_length: int) -> Text:
    """A string member as SageMaker's model (botocore's) constrains it, the pattern
    matched whole."""
    return Text(
        strict=True,
        min_length=min_length or None,
        max_length=max_length,
        pattern=None if pattern is None else f"^(?:{pattern})$",
    )


_TAG = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
_ENTITY = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,119}"
JobNameText = Annotated[
    str, _text(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", min_length=1, max_length=63)
]
ModelNameText = Annotated[str, _text(r"[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?", max_length=63)]
S3UriText = Annotated[str, _text(r"(https|s3)://([^/]+)/?(.*)", max_length=1024)]
KmsKeyText = Annotated[str, _text(r"[a-zA-Z0-9:/_-]*", max_length=2048)]
MediaType = Annotated[str, _text(max_length=256)]
JsonPath = Annotated[str, _text(max_length=63)]
EntityName = Annotated[str, _text(_ENTITY, min_length=1, max_length=120)]
TagKey = Annotated[str, _text(_TAG, min_length=1, max_length=128)]
TagValue = Annotated[str, _text(_TAG, max_length=256)]
EnvironmentKey = Annotated[str, _text(r"[a-zA-Z_][a-zA-Z0-9_]*", max_length=1024)]
EnvironmentValue = Annotated[str, _text(max_length=1024)]
TransformEnvironmentKey = Annotated[str, _text(r"[a-zA-Z_][a-zA-Z0-9_]{0,1023}", max_length=1024)]
TransformEnvironmentValue = Annotated[str, _text(max_length=10240)]
NameContainsText = Annotated[str, _text(r"[a-zA-Z0-9\-]+", max_length=63)]
PaginationToken = Annotated[str, _text(max_length=8192)]
AmiVersion = Annotated[str, _text(r"[a-zA-Z0-9]+(-[a-zA-Z0-9]+)*", min_length=1, max_length=63)]
Hostname = Annotated[str, _text(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", max_length=63)]
ImageText = Annotated[str, _text(r"[\S]+", max_length=255)]
RoleArn = Annotated[
    str,
    _text(
        r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+", min_length=20, max_length=2048
    ),
]
VpcId = Annotated[str, _text(r"[-0-9a-zA-Z]+", max_length=32)]


class _Shape(BaseModel):
    # Members byom does not know pass through as given (SageMaker adds members over
    # time; botocore has checked their types already).
    model_config = ConfigDict(extra="allow", frozen=True)


class TagShape(_Shape):
    Key: TagKey
    Value: TagValue


TagList = Annotated[list[TagShape], Field(max_length=50)]


class S3DataSourceShape(_Shape):
    S3DataType: Literal["ManifestFile", "S3Prefix", "AugmentedManifestFile", "Converse"]
    S3Uri: S3UriText


class DataSourceShape(_Shape):
    S3DataSource: S3DataSourceShape


class TransformInputShape(_Shape):
    DataSource: DataSourceShape
    ContentType: MediaType | None = None
    CompressionType: Literal["None", "Gzip"] = "None"
    SplitType: Literal["None", "Line", "RecordIO", "TFRecord"] = "None"


class TransformOutputShape(_Shape):
    S3OutputPath: S3UriText
    Accept: MediaType | None = None
    AssembleWith: Literal["None", "Line"] = "None"
    KmsKeyId: KmsKeyText | None = None


class TransformResourcesShape(_Shape):
    InstanceType: str
    InstanceCount: Annotated[StrictInt, Field(ge=1)]
    VolumeKmsKeyId: KmsKeyText | None = None
    TransformAmiVersion: AmiVersion | None = None


class ModelClientConfigShape(_Shape):
    InvocationsTimeoutInSeconds: Annotated[StrictInt, Field(ge=1, le=3600)] | None = None
    InvocationsMaxRetries: Annotated[StrictInt, Field(ge=0, le=3)] | None = None


class DataCaptureConfigShape(_Shape):
    DestinationS3Uri: S3UriText
    KmsKeyId: KmsKeyText | None = None
    GenerateInferenceId: StrictBool | None = None


class DataProcessingShape(_Shape):
    InputFilter: JsonPath | None = None
    OutputFilter: JsonPath | None = None
    JoinSource: Literal["Input", "None"] | None = None


class ExperimentConfigShape(_Shape):
    ExperimentName: EntityName | None = None
    TrialName: EntityName | None = None
    TrialComponentDisplayName: EntityName | None = None
    RunName: EntityName | None = None


class CreateTransformJob(_Shape):
    TransformJobName: JobNameText
    ModelName: ModelNameText
    MaxConcurrentTransforms: Annotated[StrictInt, Field(ge=0)] | None = None
    ModelClientConfig: ModelClientConfigShape | None = None
    MaxPayloadInMB: Annotated[StrictInt, Field(ge=0)] | None = None
    BatchStrategy: Literal["MultiRecord", "SingleRecord"] | None = None
    Environment: Annotated[
        dict[TransformEnvironmentKey, TransformEnvironmentValue],
        Field(max_length=16),
    ] = {}
    TransformInput: TransformInputShape
    TransformOutput: TransformOutputShape
    DataCaptureConfig: DataCaptureConfigShape | None = None
    TransformResources: TransformResourcesShape
    DataProcessing: DataProcessingShape | None = None
    Tags: TagList = []
    ExperimentConfig: ExperimentConfigShape | None = None


class ContainerDefinitionShape(_Shape):
    ContainerHostname: Hostname | None = None
    Image: ImageText | None = None
    Mode: Literal["SingleModel", "MultiModel"] | None = None
    ModelDataUrl: S3UriText | None = None
    Environment: Annotated[
        dict[EnvironmentKey, EnvironmentValue],
        Field(max_length=100),
    ] = {}


class VpcConfigShape(_Shape):
    SecurityGroupIds: Annotated[list[VpcId], Field(min_length=1, max_length=5)]
    Subnets: Annotated[list[VpcId], Field(min_length=1, max_length=16)]


class CreateModel(_Shape):
    ModelName: ModelNameText
    PrimaryContainer: ContainerDefinitionShape | None = None
    Containers: Annotated[list[ContainerDefinitionShape], Field(max_length=15)] | None = None
    ExecutionRoleArn: RoleArn | None = None
    Tags: TagList = []
    VpcConfig: VpcConfigShape | None = None
    EnableNetworkIsolation: StrictBool | None = None


class ModelNamed(_Shape):
    """DescribeModel, DeleteModel."""

    ModelName: ModelNameText


class TransformJobNamed(_Shape):
    """DescribeTransformJob, StopTransformJob."""

    TransformJobName: JobNameText


class _ListRequest(_Shape):
    SortOrder: Literal["Ascending", "Descending"] = "Descending"
    NextToken: PaginationToken | None = None
    MaxResults: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    NameContains: NameContainsText | None = None
    CreationTimeBefore: datetime | None = None
    CreationTimeAfter: datetime | None = None


class ListModels(_ListRequest):
    SortBy: Literal["Name", "CreationTime"] = "CreationTime"


class ListTransformJobs(_ListRequest):
    SortBy: Literal["Name", "CreationTime", "Status"] = "CreationTime"
    LastModifiedTimeAfter: datetime | None = None
    LastModifiedTimeBefore: datetime | None = None
    StatusEquals: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"] | None = None


Request = TypeVar("Request", bound=BaseModel)


def parse(shape: type[Request], body: dict[str, Any]) -> Request:
    """``body`` as ``shape``, or :class:`RequestInvalid` worded as SageMaker words it."""
    try:
        return shape.model_validate(body)
    except ValidationError as exc:
        raise RequestInvalid(coral_message(exc, body)) from None


# SageMaker's limit on a request's payload, and on payload times concurrency.
MAX_PAYLOAD_MB = 100


@cache
def instance_types() -> tuple[str, ...]:
    """TransformResources.InstanceType's values, from the client's own service model
    (botocore travels with boto3 in every bundle), so the list keeps up with SageMaker."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    values: list[str] = model.shape_for("TransformInstanceType").metadata["enum"]
    return tuple(values)


def check_transform_job(request: CreateTransformJob) -> None:
    """SageMaker's rules between members, and what byom does not run (named)."""
    source = request.TransformInput.DataSource.S3DataSource
    split = request.TransformInput.SplitType
    instance_type = request.TransformResources.InstanceType
    if instance_type not in instance_types():
        raise RequestInvalid(
            constraint_message(
                [
                    (
                        instance_type,
                        "transformResources.instanceType",
                        "Member must satisfy enum value set: [" + ", ".join(instance_types()) + "]",
                    )
                ]
            )
        )
    if split in ("RecordIO", "TFRecord"):
        raise RequestInvalid(
            f"SplitType {split} is not supported by byom: use Line (one record per line) "
            "or None (the whole object is one request)."
        )
    if source.S3DataType not in ("S3Prefix", "ManifestFile"):
        raise RequestInvalid(
            f"S3DataType {source.S3DataType} is not supported by byom: use S3Prefix or "
            "ManifestFile."
        )
    for what, uri in (
        ("TransformInput.DataSource.S3DataSource.S3Uri", source.S3Uri),
        ("TransformOutput.S3OutputPath", request.TransformOutput.S3OutputPath),
    ):
        if not uri.startswith("s3://"):
            raise RequestInvalid(f"{what} {uri!r}: byom reads and writes s3:// URIs only.")
    payload = request.MaxPayloadInMB
    if payload is not None and payload > MAX_PAYLOAD_MB:
        raise RequestInvalid(
            f"MaxPayloadInMB {payload} is over the limit: it must be at most {MAX_PAYLOAD_MB}."
        )
    concurrent = request.MaxConcurrentTransforms
    if payload and concurrent and payload * concurrent > MAX_PAYLOAD_MB:
        raise RequestInvalid(
            f"The product of MaxConcurrentTransforms ({concurrent}) and MaxPayloadInMB "
            f"({payload}) must not exceed {MAX_PAYLOAD_MB} MB."
        )
    processing = request.DataProcessing
    if processing is not None:
        for member in ("InputFilter", "OutputFilter"):
            selector = getattr(processing, member)
            if selector is None:
                continue
            try:
                parse_selector(selector)
            except SelectorError as exc:
                raise RequestInvalid(f"DataProcessing.{member} {selector!r}: {exc}") from None


def s3_location(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key)."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", uri, re.DOTALL)
    if match is None:
        raise RequestInvalid(f"{uri!r} is not an s3:// URI.")
    return match.group(1), match.group(2)
