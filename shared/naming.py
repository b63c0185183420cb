"""Deterministic names: job ids and every S3 key byom writes.

Names derive only from the uploaded object, the job's creation time and the job
id, so a retried step writes to the same place instead of leaving a second copy.
Flattening can map different keys to one name (``a/b.csv``, ``a_b.csv``,
``a:b.csv``), so the output name is claimed in the jobs table
(``JobStore.claim_output_key``), trying the candidates of ``output_key_candidates``
in turn; the errors report then follows the name the job got.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from shared.media import output_name as media_output_name
from shared.processing import OUTPUT_EXTENSION
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


NAME_CLAIM_PREFIX = "name#"  # claim items share the jobs table; job ids are hex
# An output keeps the extension of its format (a JSON Lines or Parquet output
# is asked for with byom-accept or follows its input); anything else is CSV.
_OUTPUT_EXTENSIONS = tuple(OUTPUT_EXTENSION.values())
_FRAGMENT = 8  # hex digits of the job id that tell two same-named outputs apart


def _report_name(key: str, created_at: datetime) -> str:
    name = safe_name(key).removesuffix(".gz")
    media = media_output_name(name)  # images and video answer JSON Lines (shared/media.py)
    if media is not None:
        name = media
    elif not name.lower().endswith(_OUTPUT_EXTENSIONS):
        name += ".csv"
    return f"{created_at:%Y%m%dT%H%M%SZ}-{name}"


def output_key(key: str, created_at: datetime) -> str:
    """The output name an upload would like: ``output/<UTC second>-<name>.csv``."""
    return get_settings().output_prefix + _report_name(key, created_at)


def tagged(output: str, tag: str) -> str:
    """``output/<ts>-a_b.csv`` with ``tag`` before the extension: ``...-a_b-<tag>.csv``."""
    extension = next(e for e in _OUTPUT_EXTENSIONS if output.lower().endswith(e))
    return f"{output[: -len(extension)]}-{tag}{output[-len(extension) :]}"


def output_key_candidates(key: str, created_at: datetime, job_id: str) -> list[str]:
    """The names a job may claim, best first.

    The plain name serves the common case. When another job holds it, a short
    fragment of the job id tells them apart; the whole id (unique per upload)
    is the last resort should even that be taken.
    """
    plain = output_key(key, created_at)
    return [plain, tagged(plain, job_id[:_FRAGMENT]), tagged(plain, job_id)]


def name_claim_id(output: str) -> str:
    """The jobs-table key of the item that reserves ``output`` for one job."""
    return NAME_CLAIM_PREFIX + output


def errors_key(output: str) -> str:
    """Where the rejected rows of the job writing ``output`` are listed.

    Derived from the job's claimed output name, never from the input key again,
    so two jobs whose outputs differ cannot share an errors report either.
    """
    settings = get_settings()
    name = output.removeprefix(settings.output_prefix)
    if name.endswith(".jsonl"):  # a media job's report is CSV too: line,column,reason
        name = name.removesuffix(".jsonl") + ".csv"
    return settings.errors_prefix + name


def staging_prefix(job_id: str) -> str:
    return f"{get_settings().staging_prefix}{job_id}/"


def plan_key(job_id: str) -> str:
    return f"{staging_prefix(job_id)}plan.json"


def chunk_outputs_prefix(job_id: str) -> str:
    return f"{staging_prefix(job_id)}out/"


def chunk_output_key(job_id: str, chunk_index: int) -> str:
    return f"{chunk_outputs_prefix(job_id)}{chunk_index:06d}.csv"


def groups_prefix(job_id: str) -> str:
    return f"{staging_prefix(job_id)}groups/"


def group_output_key(job_id: str, group: int) -> str:
    """Consecutive chunk outputs joined, big enough for a server-side part copy."""
    return f"{groups_prefix(job_id)}{group:06d}.csv"


def chunk_errors_prefix(job_id: str) -> str:
    return f"{staging_prefix(job_id)}errors/"


def chunk_errors_key(job_id: str, chunk_index: int) -> str:
    return f"{chunk_errors_prefix(job_id)}{chunk_index:06d}.csv"


def staged_input_key(job_id: str) -> str:
    """Where a compressed upload is inflated before it is chunked."""
    return f"{staging_prefix(job_id)}input.csv"
