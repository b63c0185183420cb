"""What every planner of ingest works from (``planners.py`` holds the table of them)."""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest import processing_plan
from services.ingest.upload import Upload
from shared.csvchunks import ReadRange
from shared.model_card import ModelCard
from shared.schemas import RowPolicy

HEAD_BYTES = 64 * 1024  # read from every line file and Parquet table at first


@dataclass(frozen=True)
class Planning:
    """What a planner works from: the job, the upload (inflated when it was gzip),
    the checked settings and the chosen model's card and width."""

    job_id: str
    upload: Upload
    policy: RowPolicy
    read: ReadRange
    key: str  # the object the workers read: the upload, or its inflated copy
    etag: str
    size: int
    head: bytes  # its first HEAD_BYTES
    columns: int
    request: processing_plan.Request
    card: ModelCard | None
