"""Every message, job item and event byom exchanges, as versioned pydantic models.

Anything arriving from outside is parsed through one of these before it is used,
so a malformed message fails loudly at the edge instead of deep in the logic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from shared.bad_rows import BadRows, RowPolicy
from shared.formats import Format, JobKind, MediaSource, media_source
from shared.model_registry import target_model
from shared.processing import Processing

__all__ = ["BadRows", "RowPolicy"]  # and every model below

SCHEMA_VERSION: Literal[1] = 1
DONE_EVENT_SOURCE = "byom"
DONE_EVENT_DETAIL_TYPE = "byom.job.finished"
# The EventBridge pattern a subscriber to done events uses.
DONE_EVENT_PATTERN = {"source": [DONE_EVENT_SOURCE], "detail-type": [DONE_EVENT_DETAIL_TYPE]}


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobState(StrEnum):
    ACCEPTED = "ACCEPTED"  # validated, chunk plan written, waiting for the scheduler
    SUBMITTED = "SUBMITTED"  # array job submitted to Batch
    RUNNING = "RUNNING"  # at least one chunk finished
    SUCCEEDED = "SUCCEEDED"  # output object complete and visible
    FAILED = "FAILED"  # terminal, with a reason

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


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


# BadRows and RowPolicy live in shared/bad_rows.py, the one policy object.


# --- The chunk plan --------------------------------------------------------------


class Chunk(_Message):
    """A byte range of the object, cut by arithmetic; its reader aligns it to lines.

    The chunk owns every line whose first byte lies in ``[start, end)``
    (``shared/csvchunks.py``).
    """

    index: int = Field(ge=0)
    start: int = Field(ge=0)  # byte offset of the range's first byte in the object
    end: int = Field(gt=0)  # byte offset one past its last byte


class MediaItem(_Message):
    """One image or video of a media job, as ingest found it (key, size, ETag)."""

    key: str = Field(min_length=1, max_length=1024)
    kind: Literal["image", "video"]
    size: int = Field(ge=0)
    etag: str | None = None  # None: not found (the skip policy keeps its place)
    line: int = Field(ge=1)  # where the upload names it (the manifest's line; 1 otherwise)
    member: str | None = None  # a file inside the zip archive ``key`` (``size``: inflated)


class MediaPlan(_Message):
    """An image or video job: chunk ``[start, end)`` is items ``start..end-1``."""

    items: tuple[MediaItem, ...] = Field(min_length=1)
    draw: Literal["none", "jpeg", "png"] = "none"  # drawn images with their boxes
    frame_rate: float = Field(default=1.0, ge=0)  # video frames per second; 0: every frame
    # What the upload was: one image or video, a manifest, a zip archive.
    source: MediaSource = "image"


# --- What a chunk plan holds for each job kind (shared/formats.py) ---------------


class RowsSource(_Message):
    """CSV rows, a row of features a line; ``processing`` for filters, joins, formats."""

    kind: Literal[JobKind.ROWS] = JobKind.ROWS
    header: bool  # the first line is a header and is not scored
    data_start: int = Field(default=0, ge=0)  # where rows begin: after the BOM and header
    # Formats, filters and joins, checked by ingest (None: a plain CSV, one line a row).
    processing: Processing | None = None
    # A plain CSV upload with a header: its output starts with a header too, the
    # prediction columns' names (numbered from the one name when the model answers
    # more columns), so output line n is input line n.
    output_header: tuple[str, ...] | None = None


class RecordsSource(_Message):
    """JSON Lines, an object or an array a line."""

    kind: Literal[JobKind.RECORDS] = JobKind.RECORDS
    data_start: int = Field(default=0, ge=0)  # after a BOM
    processing: Processing


class ParquetSource(_Message):
    """A Parquet table: each chunk is a run of row groups (``processing.parquet``)."""

    kind: Literal[JobKind.PARQUET] = JobKind.PARQUET
    processing: Processing


class MediaSourcePlan(_Message):
    """Images and video: each chunk is a run of items (a video alone)."""

    kind: Literal[JobKind.MEDIA] = JobKind.MEDIA
    media: MediaPlan


PlanSource = Annotated[
    RowsSource | RecordsSource | ParquetSource | MediaSourcePlan, Field(discriminator="kind")
]
_LINE_FIELDS = ("header", "data_start", "processing", "output_header", "media")


def _source_of_flat_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A plan written before plans had a ``source`` (flat fields), or built flat by a
    caller: its kind follows from what it holds, as the services used to decide it."""
    fields = {name: data.pop(name) for name in _LINE_FIELDS if name in data}
    media = fields.get("media")
    processing = fields.get("processing")
    content = None
    if processing is not None:
        content = (
            processing.content if isinstance(processing, Processing) else processing["content"]
        )
    if media is not None:
        if isinstance(media, dict) and "source" not in media:
            media = {**media, "source": media_source(str(data.get("key", ""))) or "image"}
        return {"kind": JobKind.MEDIA, "media": media}
    if content == Format.PARQUET:
        return {"kind": JobKind.PARQUET, "processing": processing}
    if content == Format.JSONL:
        return {
            "kind": JobKind.RECORDS,
            "processing": processing,
            "data_start": fields.get("data_start", 0),
        }
    return {"kind": JobKind.ROWS, "header": fields.get("header", False)} | {
        name: fields[name]
        for name in ("data_start", "processing", "output_header")
        if name in fields
    }


class ChunkPlan(_Message):
    """Written once by ingest to staging; workers read it to find their byte ranges.

    The envelope (the object version, chunks, policy, model) is the same for every
    job kind; ``source`` holds what one kind needs, one variant per kind, told
    apart by ``kind`` (decided once, at ingest).
    """

    version: Literal[1] = SCHEMA_VERSION
    job_id: str
    bucket: str
    key: str
    etag: str
    size: int = Field(ge=0)
    # Cells per row: the chosen model's width (BYOM_FEATURE_COUNT when not known).
    columns: int | None = Field(default=None, ge=1)
    policy: RowPolicy = RowPolicy()
    chunks: tuple[Chunk, ...] = Field(min_length=1)
    # The registry model the job chose (None: the endpoint's default model).
    model_name: str | None = None
    model_version: str | None = None
    # Rows and bytes per request the model takes (its card's batch limits).
    max_request_rows: int | None = Field(default=None, ge=1)
    max_request_bytes: int | None = Field(default=None, ge=1)
    source: PlanSource

    @model_validator(mode="before")
    @classmethod
    def _flat_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "source" not in data:
            data = dict(data)
            data["source"] = _source_of_flat_fields(data)
        return data

    @property
    def kind(self) -> JobKind:
        return self.source.kind

    @property
    def header(self) -> bool:
        """The first line is a header (CSV rows only)."""
        return isinstance(self.source, RowsSource) and self.source.header

    @property
    def data_start(self) -> int:
        """Where the records begin: after the BOM and header (line formats)."""
        if isinstance(self.source, RowsSource | RecordsSource):
            return self.source.data_start
        return 0

    @property
    def processing(self) -> Processing | None:
        if isinstance(self.source, MediaSourcePlan):
            return None
        return self.source.processing

    @property
    def output_header(self) -> tuple[str, ...] | None:
        return self.source.output_header if isinstance(self.source, RowsSource) else None

    @property
    def media(self) -> MediaPlan | None:
        return self.source.media if isinstance(self.source, MediaSourcePlan) else None

    @property
    def first_line(self) -> int:
        """The file's line number of the first row (the header is line 1)."""
        return 2 if self.header else 1

    def request_limits(self, request_bytes: int) -> tuple[int, int | None]:
        """Bytes and rows per request: the caller's setting, held to the model's own
        limits (its manifest's ``batch.max_bytes`` and ``batch.max_rows``)."""
        if self.max_request_bytes is not None:
            request_bytes = min(request_bytes, self.max_request_bytes)
        return request_bytes, self.max_request_rows

    @property
    def target_model(self) -> str | None:
        """The multi-model endpoint's TargetModel for this job, None for the default model."""
        if self.model_name is None or self.model_version is None:
            return None
        return target_model(self.model_name, self.model_version)


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


class JobFinished(_Message):
    """The detail of the done event on byom's EventBridge bus."""

    version: Literal[1] = SCHEMA_VERSION
    job_id: str
    status: Literal["SUCCEEDED", "FAILED"]
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
