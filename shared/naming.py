"""Deterministic names: job ids and every S3 key byom writes.

Names derive only from the uploaded object and the job's creation time, so a
retried step writes to the same place instead of leaving a second copy.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from shared.settings import get_settings

# Letters and digits of any script are kept (S3 keys are UTF-8); everything that
# means something in a path, a URL or a shell becomes "_".
_UNSAFE = re.compile(r"[^\w.=+-]+")
_DOTS = re.compile(r"\.{2,}")  # no ".." segments, even flattened
_MAX_NAME = 200


def job_id_for(bucket: str, key: str, etag: str) -> str:
    """Same key and content (ETag) -> same job, however often S3 announces it or the
    user re-uploads it; new content -> a new job."""
    identity = "\n".join((bucket, key, etag.strip('"')))
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def safe_name(key: str) -> str:
    """The input's name relative to ``input/``, flattened to one safe path segment."""
    prefix = get_settings().input_prefix
    relative = key[len(prefix) :] if key.startswith(prefix) else key
    name = _UNSAFE.sub("_", relative.replace("/", "_"))
    name = _DOTS.sub("_", name).strip("._") or "input"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(relative.encode()).hexdigest()[:12]
        name = f"{name[: _MAX_NAME - 13]}-{digest}"
    return name


def _report_name(key: str, created_at: datetime) -> str:
    name = safe_name(key).removesuffix(".gz")
    if not name.lower().endswith(".csv"):
        name += ".csv"
    return f"{created_at:%Y%m%dT%H%M%SZ}-{name}"


def output_key(key: str, created_at: datetime) -> str:
    return get_settings().output_prefix + _report_name(key, created_at)


def errors_key(key: str, created_at: datetime) -> str:
    """Where the rejected rows of a job are listed (line, column, reason)."""
    return get_settings().errors_prefix + _report_name(key, created_at)


def staging_prefix(job_id: str) -> str:
    return f"{get_settings().staging_prefix}{job_id}/"


def plan_key(job_id: str) -> str:
    return f"{staging_prefix(job_id)}plan.json"


def chunk_outputs_prefix(job_id: str) -> str:
    return f"{staging_prefix(job_id)}out/"


def chunk_output_key(job_id: str, chunk_index: int) -> str:
    return f"{chunk_outputs_prefix(job_id)}{chunk_index:06d}.csv"


def chunk_errors_prefix(job_id: str) -> str:
    return f"{staging_prefix(job_id)}errors/"


def chunk_errors_key(job_id: str, chunk_index: int) -> str:
    return f"{chunk_errors_prefix(job_id)}{chunk_index:06d}.csv"


def staged_input_key(job_id: str) -> str:
    """Where a compressed upload is inflated before it is chunked."""
    return f"{staging_prefix(job_id)}input.csv"
