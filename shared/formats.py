"""The job kinds byom scores, and the formats and media types they read and write.

One table, read by every service: which kind an upload is (decided once, at
ingest, then recorded in the chunk plan and on the job item), the media types of
each format, and the extension each output format's name takes.

- ``rows``: CSV text, a row of features a line (with or without a header).
- ``records``: JSON Lines, an object or an array a line.
- ``parquet``: a Parquet table, its row groups as chunks.
- ``media``: images and video (one upload, a manifest or a zip archive).
- ``transform``: one object of a SageMaker transform job, its records sent raw.

Detection, in order: the upload's ``byom-content-type`` metadata, its extension
(``.gz`` aside), its Content-Type; media by name only (an image is an image
whatever its Content-Type). Adding a line format such as TSV means a row here,
and a planner, a scorer and an assembler registered beside the others
(docs/layout.md names the files).

Pure Python: it travels in the Lambda bundles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Literal

# Media types, each written once.
CSV_TYPE = "text/csv"
JSONL_TYPE = "application/jsonlines"
PARQUET_TYPE = "application/vnd.apache.parquet"
NPY_TYPE = "application/x-npy"  # request bodies: float32 rows (SageMaker's toolkit reads it)
JSON_TYPE = "application/json"


class Format(StrEnum):
    """A tabular file format, of an upload or of an output."""

    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class JobKind(StrEnum):
    ROWS = "rows"
    RECORDS = "records"
    PARQUET = "parquet"
    MEDIA = "media"
    # One object of a SageMaker transform job (shared/transform.py): raw records sent
    # as they are; planned from the API's message, never detected from an upload.
    TRANSFORM = "transform"


# What an upload of media is, by its name (shared/media.py plans by names only).
MediaSource = Literal["image", "video", "manifest", "archive"]


@dataclass(frozen=True)
class FormatSpec:
    """One format's row of the table."""

    format: Format
    kind: JobKind  # the job kind an upload of this format is
    media_type: str  # written on outputs of this format
    content_types: tuple[str, ...]  # accepted as Content-Type, byom-content-type, byom-accept
    extensions: tuple[str, ...]  # of an upload's name; the first is the output's
    output_extension: str


FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec(Format.CSV, JobKind.ROWS, CSV_TYPE, (CSV_TYPE,), (".csv",), ".csv"),
    FormatSpec(
        Format.JSONL,
        JobKind.RECORDS,
        JSONL_TYPE,
        (JSONL_TYPE, "application/x-jsonlines", "application/jsonl", "application/x-ndjson"),
        (".jsonl", ".ndjson"),
        ".jsonl",
    ),
    FormatSpec(
        Format.PARQUET,
        JobKind.PARQUET,
        PARQUET_TYPE,
        ("application/x-parquet", PARQUET_TYPE),
        (".parquet",),
        ".parquet",
    ),
)
SPECS: dict[Format, FormatSpec] = {spec.format: spec for spec in FORMATS}

# Derived views of the table (the names the modules that read them have always used).
CONTENT_TYPES: dict[str, Format] = {t: s.format for s in FORMATS for t in s.content_types}
EXTENSIONS: dict[str, Format] = {e: s.format for s in FORMATS for e in s.extensions}
MEDIA_TYPE: dict[Format, str] = {s.format: s.media_type for s in FORMATS}
OUTPUT_EXTENSION: dict[Format, str] = {s.format: s.output_extension for s in FORMATS}

# Media uploads, by name.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")
MANIFEST_SUFFIXES = (".manifest.jsonl", ".manifest.json", ".manifest.csv")
ARCHIVE_SUFFIXES = (".zip",)
MEDIA_OUTPUT = Format.JSONL  # image and video jobs answer JSON Lines, a record per image


def media_source(key: str) -> MediaSource | None:
    """What a media upload is by its name; None for anything that is not media."""
    lowered = key.lower()
    if lowered.endswith(MANIFEST_SUFFIXES):
        return "manifest"
    if lowered.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    if lowered.endswith(IMAGE_SUFFIXES):
        return "image"
    if lowered.endswith(VIDEO_SUFFIXES):
        return "video"
    return None


def format_of_media_type(value: str) -> Format | None:
    """The format a Content-Type names (parameters such as ``; charset=`` aside)."""
    return CONTENT_TYPES.get(value.strip().lower().partition(";")[0].strip())


def detect_format(key: str, content_type: str, declared: str | None = None) -> Format | None:
    """A tabular upload's format: ``declared`` (byom-content-type), else its extension,
    else its Content-Type; None when ``declared`` names no format byom reads."""
    if declared is not None:
        return format_of_media_type(declared)
    suffix = PurePosixPath(key.lower().removesuffix(".gz")).suffix
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    return format_of_media_type(content_type) or Format.CSV


def kind_of(key: str, content: Format | None) -> JobKind:
    """The job kind of an upload: media by its name, else its format's kind."""
    if media_source(key) is not None:
        return JobKind.MEDIA
    return SPECS[content or Format.CSV].kind


def output_format(kind: JobKind, accept: Format | None) -> Format:
    """The format a job of ``kind`` writes: media answers JSON Lines, others ``accept``."""
    if kind is JobKind.MEDIA:
        return MEDIA_OUTPUT
    return accept or Format.CSV
