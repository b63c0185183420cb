"""What a job that FAILED or was CANCELLED keeps of its work, so ``byom retry`` resumes.

An ended job's staging (``staging/<job id>/``) is removed when its ending is
announced, as it always was. Before that, a FAILED or CANCELLED job's plan, its
staged input (an inflated upload) and the outputs of the chunks it counted
(``done_chunks``) are copied to ``staging/kept/<job id>/``, under the same
relative names. A retry copies them back and schedules only the other chunks;
the staging lifecycle rule expires what is never retried.

Chunk outputs and errors of chunks that were not counted (a late write) and
joined groups (only an optimisation) are not kept.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shared import aws, chunk_output, naming
from shared.schemas import JobItem
from shared.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

_COPIES_IN_FLIGHT = 16
_CHUNK_FILE = re.compile(r"^(out|errors)/(\d+)\.csv$")


def kept_prefix(job_id: str) -> str:
    """Where an ended job's reusable work waits for a retry (not a job id: ids are hex)."""
    return f"{get_settings().staging_prefix}kept/{job_id}/"


def _listed(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def worth_keeping(relative: str, done_chunks: frozenset[int]) -> bool:
    """A staging object a retry can reuse: anything but groups and uncounted chunks."""
    if relative.startswith("groups/"):
        return False
    chunk = _CHUNK_FILE.match(relative)
    return chunk is None or int(chunk.group(2)) in done_chunks


def _copy_all(s3: S3Client, bucket: str, pairs: list[tuple[str, str]]) -> None:
    def copy(pair: tuple[str, str]) -> None:
        source, target = pair
        # The managed copy: a staged input may be over CopyObject's 5 GB.
        s3.copy({"Bucket": bucket, "Key": source}, bucket, target)

    with ThreadPoolExecutor(_COPIES_IN_FLIGHT) as pool:
        list(pool.map(copy, pairs))


def keep_finished(job: JobItem) -> int:
    """Copy what a retry can reuse out of the job's staging; returns how many objects.

    Repeatable: an announcement made again finds staging removed and copies
    nothing, and never deletes what was kept. Never in the way of the ending:
    a copy that fails is logged, and a retry then scores those chunks again
    (it counts only the chunk outputs it finds, :func:`counted_chunks`).
    """
    try:
        return _keep(job)
    except (ClientError, BotoCoreError) as exc:
        log.warning("work not kept for a retry", extra={"job_id": job.job_id, "error": str(exc)})
        return 0


def _keep(job: JobItem) -> int:
    s3 = aws.s3()
    staging = naming.staging_prefix(job.job_id)
    kept = kept_prefix(job.job_id)
    pairs = [
        (key, kept + key[len(staging) :])
        for key in _listed(s3, job.bucket, staging)
        if worth_keeping(key[len(staging) :], job.done_chunks)
    ]
    _copy_all(s3, job.bucket, pairs)
    if pairs:
        log.info("work kept for a retry", extra={"job_id": job.job_id, "objects": len(pairs)})
    return len(pairs)


def restore_kept(job: JobItem, *, remove: bool = True) -> int:
    """Copy the kept work back into the job's staging; returns how many objects.

    With ``remove=False`` the kept copy stays (the caller removes it once the
    retry is recorded, so that a retry that loses a race leaves it for the winner).
    """
    s3 = aws.s3()
    staging = naming.staging_prefix(job.job_id)
    kept = kept_prefix(job.job_id)
    keys = _listed(s3, job.bucket, kept)
    _copy_all(s3, job.bucket, [(key, staging + key[len(kept) :]) for key in keys])
    if remove:
        remove_kept(job, keys)
    return len(keys)


def counted_chunks(job: JobItem, indexes: frozenset[int]) -> dict[int, tuple[int, int]]:
    """Of these chunks, those whose output is in staging with its counts recorded:
    index -> (rows, bad rows). A retry counts exactly these as done."""
    s3 = aws.s3()

    def counts(index: int) -> tuple[int, int] | None:
        key = naming.chunk_output_key(job.job_id, index)
        try:
            head = s3.head_object(Bucket=job.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return chunk_output.counts(head.get("Metadata", {}))

    ordered = sorted(indexes)
    with ThreadPoolExecutor(_COPIES_IN_FLIGHT) as pool:
        found = list(pool.map(counts, ordered))
    return {index: result for index, result in zip(ordered, found, strict=True) if result}


def remove_kept(job: JobItem, keys: list[str] | None = None) -> None:
    s3 = aws.s3()
    keys = _listed(s3, job.bucket, kept_prefix(job.job_id)) if keys is None else keys
    for first in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
        s3.delete_objects(
            Bucket=job.bucket,
            Delete={"Objects": [{"Key": key} for key in keys[first : first + 1000]], "Quiet": True},
        )
