"""The chunk plan: written once by ingest to staging, read by the scheduler and workers.

Its envelope (the object version, the chunks, the bad-row policy, the model and
its request limits) is the same for every job kind; ``source`` holds what one
kind needs, one pydantic variant per kind, told apart by ``kind`` (decided once,
at ingest, from ``shared/formats.py``). A plan written before plans had a
``source`` (flat fields) still reads: its kind follows from what it holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.bad_rows import RowPolicy
from shared.formats import Format, JobKind, MediaSource, media_source
from shared.model_registry import target_model
from shared.processing import Processing
from shared.transform import ObjectSettings

PLAN_VERSION: Literal[1] = 1


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


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


class TransformSource(_Message):
    """One object of a SageMaker transform job: its records go to the model raw.

    The plan's ``bucket``/``key`` are what the workers read (the object, or its
    inflated copy in staging); ``input_bucket``/``input_key`` name the object as
    the user gave it, for errors; the output goes to ``output_bucket``/``output_key``.
    """

    kind: Literal[JobKind.TRANSFORM] = JobKind.TRANSFORM
    settings: ObjectSettings
    target_model: str  # the endpoint's TargetModel
    environment: dict[str, str] = {}
    input_bucket: str
    input_key: str
    output_bucket: str
    output_key: str
    transform_job_name: str
    transform_index: int = Field(ge=0)
    # GenerateInferenceId's time (SageMaker: the transform job's start, UTC, to the
    # second): when ingest planned the object, the same for every chunk and retry.
    inference_time: str = ""

    @property
    def input_uri(self) -> str:
        return f"s3://{self.input_bucket}/{self.input_key}"


PlanSource = Annotated[
    RowsSource | RecordsSource | ParquetSource | MediaSourcePlan | TransformSource,
    Field(discriminator="kind"),
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

    version: Literal[1] = PLAN_VERSION
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
    # Where chunk outputs go (None: ``bucket``); a transform object may be read
    # from a bucket of the user's while its staging stays in byom's.
    staging_bucket: str | None = None
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
    def staging(self) -> str:
        """The bucket of the job's staging objects (chunk outputs, errors)."""
        return self.staging_bucket or self.bucket

    @property
    def transform(self) -> TransformSource | None:
        return self.source if isinstance(self.source, TransformSource) else None

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
        if isinstance(self.source, MediaSourcePlan | TransformSource):
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
        if isinstance(self.source, TransformSource):
            return self.source.target_model
        if self.model_name is None or self.model_version is None:
            return None
        return target_model(self.model_name, self.model_version)
