"""The kind and output format of a job, as ingest recorded them on its item.

Status reads them here and never looks at a key's extension again, except for
an item written before items recorded them.
"""

from __future__ import annotations

from shared.formats import EXTENSIONS, Format, JobKind, media_source
from shared.schemas import JobItem


def output_format_of(job: JobItem) -> Format:
    """The job's output format, as ingest recorded it (an older item: its name's
    extension, CSV unless it says otherwise)."""
    if job.output_format is not None:
        return job.output_format
    key = job.output_key.lower()
    return next((f for e, f in EXTENSIONS.items() if key.endswith(e)), Format.CSV)


def kind_of_job(job: JobItem) -> JobKind | None:
    """The job's kind as ingest recorded it; for an older item, MEDIA when its upload
    was media by name, else None (not known, and not needed but for media)."""
    if job.kind is not None:
        return job.kind
    return JobKind.MEDIA if media_source(job.input_key) is not None else None
