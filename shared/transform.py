"""SageMaker Batch Transform on byom: what the API, ingest and status agree on.

A transform job (``CreateTransformJob``) is a set of input objects, each run as
one byom job of kind ``transform`` (``shared/formats.py``): the API
(``services/transform/``) lists the objects and sends one
:class:`TransformObject` per object to the ingest queue; ingest plans each as a
job; status, as each object's job ends, counts it on the transform job's record
(:class:`TransformRecord`, in the SageMaker table) and, once every object has
ended, settles the transform job and sends SageMaker's state-change event.

The request's own settings travel as given, checked once by the API, so every
service reads the same meaning (docs/sagemaker-transform.md).

Pure pydantic: it travels in the Lambda bundles.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TRANSFORM_OBJECT: Literal["transform-object"] = "transform-object"
# SageMaker's state-change event, on the account's default bus.
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Transform Job State Change"
DEFAULT_BUS = "default"


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TransformStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def terminal(self) -> bool:
        return self in (
            TransformStatus.COMPLETED,
            TransformStatus.FAILED,
            TransformStatus.STOPPED,
        )


class ObjectSettings(_Message):
    """How one object of a transform job is split, sent, answered and assembled.

    The request's fields, resolved once by the API (defaults, the container's
    execution parameters), named as SageMaker names them.
    """

    content_type: str | None = None  # TransformInput.ContentType; None: not sent
    compression: Literal["None", "Gzip"] = "None"
    split_type: Literal["None", "Line"] = "None"
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "SingleRecord"
    max_payload_bytes: int | None = Field(default=6 * 1024 * 1024, ge=1)  # None: no limit
    max_concurrent: int = Field(default=1, ge=1)
    accept: str | None = None  # TransformOutput.Accept
    assemble_with: Literal["None", "Line"] = "None"
    # DataProcessing: byom's JSONPath subset (shared/selectors.py).
    input_filter: str | None = None
    output_filter: str | None = None
    join_source: Literal["Input", "None"] = "None"
    generate_inference_id: bool = False  # DataCaptureConfig.GenerateInferenceId
    # ModelClientConfig, enforced per request.
    invocations_timeout_seconds: int = Field(default=600, ge=1, le=3600)
    invocations_max_retries: int = Field(default=3, ge=0, le=3)


class TransformObject(_Message):
    """API -> ingest (on the ingest queue): plan one input object of a transform job."""

    type: Literal["transform-object"] = "transform-object"
    transform_job_name: str
    transform_job_arn: str
    index: int = Field(ge=0)  # the object's place in key (or manifest) order
    objects: int = Field(ge=1)  # how many the transform job has
    bucket: str
    key: str
    etag: str
    size: int = Field(ge=0)
    output_bucket: str
    output_key: str  # <S3OutputPath>/<key relative to the prefix>.out
    settings: ObjectSettings
    target_model: str  # the registry model (name/version) the endpoint loads
    # No longer sent: the environment travels inside the registered package (SQS
    # bodies hold 256 KB). Kept, empty, so that older messages still parse.
    environment: dict[str, str] = {}


class TransformRecord(BaseModel):
    """A transform job as the SageMaker table stores it (pk ``transform#<name>``).

    ``request`` is the CreateTransformJob request as received (after validation),
    so DescribeTransformJob answers with the user's own fields.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    arn: str
    status: TransformStatus
    request: dict[str, Any]
    model_name: str
    creation_time: datetime
    last_modified_time: datetime
    transform_start_time: datetime | None = None
    transform_end_time: datetime | None = None
    failure_reason: str | None = None
    objects: int = 0
    objects_ended: int = 0
    objects_failed: int = 0
    # The byom job of each object, in object order (shared/jobs.py ids).
    object_jobs: list[str] = []


def object_job_id(transform_job_arn: str, index: int) -> str:
    """The byom job id of a transform job's ``index``-th object: the same on every
    delivery of its message, so a redelivery finds the job instead of making a second."""
    digest = hashlib.sha256(f"{transform_job_arn}\0{index}".encode()).hexdigest()
    return f"t{digest[:31]}"
