"""Every message, job item and event byom exchanges, as versioned pydantic models.

Anything arriving from outside is parsed through one of these before it is used,
so a malformed message fails loudly at the edge instead of deep in the logic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from shared.bad_rows import BadRows, RowPolicy
from shared.formats import Format, JobKind
from shared.plans import (
    Chunk,
    ChunkPlan,
    MediaItem,
    MediaPlan,
    MediaSourcePlan,
    ParquetSource,
    PlanSource,
    RecordsSource,
    RowsSource,
    TransformSource,
)

# The bad-row policy and the chunk plan have modules of their own; named here too.
__all__ = [
    "DONE_EVENT_DETAIL_TYPE",
    "DONE_EVENT_PATTERN",
    "DONE_EVENT_SOURCE",
    "SCHEMA_VERSION",
    "BadRows",
    "BatchAttempt",
    "BatchContainer",
    "BatchEnvironmentVariable",
    "BatchJobDetail",
    "BatchJobStateChange",
    "Chunk",
    "ChunkDone",
    "ChunkFailure",
    "ChunkPlan",
    "ChunkTimings",
    "JobFinished",
    "JobItem",
    "JobState",
    "MediaItem",
    "MediaPlan",
    "MediaSourcePlan",
    "ParquetSource",
    "PlanSource",
    "RecordsSource",
    "RowPolicy",
    "RowsSource",
    "S3Bucket",
    "S3Object",
    "S3ObjectCreatedDetail",
    "S3ObjectCreatedEvent",
    "ScheduleRequest",
    "TransformSource",
]

SCHEMA_VERSION: Literal[1] = 1
DONE_EVENT_SOURCE = "byom"
DONE_EVENT_DETAIL_TYPE = "byom.job.finished"
# The EventBridge pattern a subscriber to done events uses.
DONE_EVENT_PATTERN = {"source": [DONE_EVENT_SOURCE], "detail-type": [DONE_EVENT_DETAIL_TYPE]}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobState(StrEnum):
    ACCEPTED = "ACCEPTED"  # validated, chunk plan written, waiting for the scheduler
    # The endpoint had no capacity (a scale-to-zero endpoint at zero copies): the
    # scheduler asked for some, and the job waits for it; its array may already run.
    WAITING_FOR_ENDPOINT = "WAITING_FOR_ENDPOINT"
    SUBMITTED = "SUBMITTED"  # array job submitted to Batch
    RUNNING = "RUNNING"  # at least one chunk finished
    SUCCEEDED = "SUCCEEDED"  # output object complete and visible
    FAILED = "FAILED"  # terminal, with a reason
    # Terminal: stopped by a person (byom cancel, StopTransformJob), with the reason
    # given; no output. A FAILED or CANCELLED job may be retried (shared/job_control.py).
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


# --- S3 "Object Created" as EventBridge delivers it ------------------------------


class S3Bucket(BaseModel):
    name: str = Field(min_length=3, max_length=63)


class S3Object(BaseModel):
    key: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0)
    # AWS spells it "etag"; moto's events say "eTag", as S3's own notifications do.
    etag: str = Field(min_length=1, validation_alias=AliasChoices("etag", "eTag"))
    version_id: str | None = Field(default=None, alias="version-id")
    sequencer: str | None = None


class S3ObjectCreatedDetail(BaseModel):
    bucket: S3Bucket
    object: S3Object


class S3ObjectCreatedEvent(BaseModel):
    """The EventBridge envelope S3 sends for ``Object Created``."""

    model_config = ConfigDict(populate_by_name=True)

    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    time: datetime
    detail: S3ObjectCreatedDetail


# --- What to do with bad rows ---------------------------------------------------


# --- Messages between services ---------------------------------------------------


class ScheduleRequest(_Message):
    """ingest -> scheduler: a validated job is ready to run."""

    version: Literal[1] = SCHEMA_VERSION
    job_id: str
    chunk_count: int = Field(ge=1)
    plan_key: str


class ChunkFailure(_Message):
    # input: the file itself (the reason names file, line, column); model: the
    # endpoint rejected the rows; unavailable: retries ran out.
    kind: Literal["input", "model", "unavailable"]
    reason: str
    line: int | None = None
    column: int | None = None


class ChunkTimings(_Message):
    """Where one chunk's time went, for the metrics the status service publishes."""

    seconds: float = Field(ge=0)  # reading, parsing, scoring and writing the chunk
    endpoint_calls: int = Field(default=0, ge=0)
    endpoint_seconds: float = Field(default=0, ge=0)  # summed over the calls
    endpoint_retries: int = Field(default=0, ge=0)
    # Waiting for an endpoint with no capacity (scale-to-zero, waking), before the
    # chunk's first answer; not counted in ``endpoint_seconds``.
    endpoint_wait_seconds: float = Field(default=0, ge=0)


class ChunkDone(_Message):
    """inference worker -> status: one chunk is finished (or failed for good)."""

    version: Literal[1] = SCHEMA_VERSION
    job_id: str
    chunk_index: int = Field(ge=0)
    attempt: int = Field(ge=1)
    rows: int = Field(ge=0)
    bad_rows: int = Field(default=0, ge=0)  # rejected under the SKIP policy
    output_key: str | None = None
    output_bytes: int = Field(default=0, ge=0)
    failure: ChunkFailure | None = None
    timings: ChunkTimings | None = None


# --- AWS Batch "Job State Change", as EventBridge delivers it to the status queue ---


class BatchEnvironmentVariable(BaseModel):
    name: str
    value: str = ""


class BatchAttempt(BaseModel):
    model_config = ConfigDict(extra="ignore")

    statusReason: str | None = None


class BatchContainer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    environment: list[BatchEnvironmentVariable] = []
    exitCode: int | None = None
    reason: str | None = None


class BatchJobDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    jobId: str
    jobName: str
    status: str
    statusReason: str | None = None
    attempts: list[BatchAttempt] = []
    container: BatchContainer = BatchContainer()

    def environment(self, name: str) -> str | None:
        return next((v.value for v in self.container.environment if v.name == name), None)


class BatchJobStateChange(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    source: Literal["aws.batch"]
    detail_type: Literal["Batch Job State Change"] = Field(alias="detail-type")
    detail: BatchJobDetail


# --- The job item and the done event ---------------------------------------------


class JobItem(BaseModel):
    """The job as stored in DynamoDB (one item per uploaded object version)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    state: JobState
    bucket: str
    input_key: str
    input_etag: str
    input_size: int
    # S3's LastModified of the upload this job scores: a later upload of the same
    # bytes after a FAILED job is a retry, not a duplicate event.
    input_last_modified: datetime | None = None
    output_key: str
    # Decided once, at ingest (None: an item written before items recorded them).
    kind: JobKind | None = None
    output_format: Format | None = None
    plan_key: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    deadline_epoch: int
    expires_at: int  # DynamoDB TTL attribute
    chunk_count: int = 0
    chunks_done: int = 0
    # Which chunks are counted (a number set, written by ``record_chunk`` only).
    done_chunks: frozenset[int] = Field(default=frozenset(), exclude=True)
    rows: int = 0
    bad_rows: int = 0
    policy: RowPolicy = RowPolicy()
    errors_key: str | None = None
    batch_job_id: str | None = None
    error: str | None = None
    model_name: str | None = None  # the registry model the job chose; None: the default
    model_version: str | None = None
    # The X-Ray id of the trace of the upload that created the job (shared/tracing.py).
    trace_id: str | None = None
    # One object of a SageMaker transform job (shared/transform.py): the job's name
    # and the object's place in it; None for an upload's job.
    transform_job_name: str | None = None
    transform_index: int | None = None
    # Where ``input_key`` and ``output_key`` are, when not in ``bucket`` (a transform
    # object's, read from and written to the user's buckets; staging stays in ``bucket``).
    input_bucket: str | None = None
    output_bucket: str | None = None
    # How often ``byom retry`` ran the job again (each run has its own Batch array).
    retries: int = 0
    # When the scheduler found the endpoint without capacity and asked for it, and
    # how long the job's first chunk then waited for an answer (the cold start).
    endpoint_wake_at: datetime | None = None
    endpoint_waited_seconds: float | None = None


class JobFinished(_Message):
    """The detail of the done event on byom's EventBridge bus."""

    version: Literal[1] = SCHEMA_VERSION
    job_id: str
    # CANCELLED: stopped by a person; ``error`` says who or why. Like FAILED, no output.
    status: Literal["SUCCEEDED", "FAILED", "CANCELLED"]
    input_uri: str
    output_uri: str | None
    rows: int
    chunks: int
    duration_seconds: float
    error: str | None = None
    bad_rows: int = 0
    errors_uri: str | None = None
    model_name: str | None = None  # None: the endpoint's default model
    model_version: str | None = None
    # The upload's trace in X-Ray's form (1-<8 hex>-<24 hex>); None when not traced.
    trace_id: str | None = None
    # Which run of the job ended: 0 the first, n after n retries. A retried job
    # announces again, so subscribers dedupe on (job_id, retries).
    retries: int = 0
