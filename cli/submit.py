"""``byom submit``: upload a file to input/ and, if asked, watch its job to the end.

The choices an upload can make travel as the S3 object metadata ingest reads
(``byom-model``, ``byom-on-bad-rows``, ``byom-max-bad-rows``); progress comes
from the job item, whose ``chunks_done`` and ``rows`` the status service counts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cli import jobs
from cli.target import Target
from services.ingest.ingest import LIMIT_METADATA, POLICY_METADATA
from shared.model_registry import MODEL_METADATA
from shared.schemas import BadRows, JobItem

# S3 sends user metadata as x-amz-meta-* HTTP headers: names are header tokens,
# values US-ASCII text.
_METADATA_KEY = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
POLL_SECONDS = 0.5


class SubmitError(ValueError):
    """A setting of the command that S3 or ingest would refuse, named."""


def metadata(
    *,
    model: str | None = None,
    on_bad_rows: BadRows | None = None,
    max_bad_rows: int | None = None,
    meta: list[str] | None = None,
) -> dict[str, str]:
    """The upload's S3 metadata: ``--meta KEY=VALUE`` pairs, then the named options."""
    values: dict[str, str] = {}
    for pair in meta or []:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise SubmitError(f"--meta {pair!r}: use KEY=VALUE")
        if not _METADATA_KEY.match(key):
            raise SubmitError(
                f"--meta {pair!r}: a metadata key is letters, digits and -_. (an HTTP header name)"
            )
        if not value.isascii() or any(ord(c) < 32 for c in value):
            raise SubmitError(f"--meta {pair!r}: S3 metadata values are printable ASCII")
        values[key] = value
    if model is not None:
        if not model.strip():
            raise SubmitError("--model: give a model name, or name:version")
        values[MODEL_METADATA] = model.strip()
    if on_bad_rows is not None:
        values[POLICY_METADATA] = on_bad_rows.value
    if max_bad_rows is not None:
        if max_bad_rows < -1:
            raise SubmitError("--max-bad-rows: a whole number, -1 for no limit")
        values[LIMIT_METADATA] = str(max_bad_rows)
    return values


def input_key(target: Target, path: Path, key: str | None) -> str:
    """Where the file goes: input/<its name>, or input/<KEY> for ``--key``."""
    name = key if key is not None else path.name
    name = name.lstrip("/")
    if not name or name.endswith("/"):
        raise SubmitError(f"--key {key!r}: name an object, not a folder")
    return name if name.startswith(target.input_prefix) else target.input_prefix + name


@dataclass(frozen=True)
class Submitted:
    job_id: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def upload(target: Target, path: Path, key: str, meta: dict[str, str]) -> Submitted:
    """Upload (multipart for big files) and work out the job ingest will make of it."""
    s3 = target.client("s3")
    s3.upload_file(str(path), target.bucket, key, ExtraArgs={"Metadata": meta})
    head = s3.head_object(Bucket=target.bucket, Key=key)
    etag = head["ETag"].strip('"')
    job_id = jobs.job_id_for_upload(target, key, etag, head["LastModified"])
    return Submitted(job_id=job_id, bucket=target.bucket, key=key)


@dataclass(frozen=True)
class Progress:
    """One look at the job item, as the progress display shows it."""

    state: str
    chunks_done: int
    chunk_count: int
    rows: int
    bad_rows: int
    elapsed: float  # since the upload

    @property
    def fraction(self) -> float:
        if self.chunk_count <= 0:
            return 0.0
        return min(1.0, self.chunks_done / self.chunk_count)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """At the rate so far, for the chunks left; None before the first chunk."""
        if not self.chunks_done or self.chunks_done >= self.chunk_count:
            return None
        per_chunk = self.elapsed / self.chunks_done
        return per_chunk * (self.chunk_count - self.chunks_done)

    def line(self) -> str:
        eta = self.eta_seconds
        return (
            f"{self.state:<9} {self.chunks_done}/{self.chunk_count} chunks "
            f"{self.fraction:6.1%}  {self.rows:,} rows  {self.rows_per_second:,.0f} rows/s"
            + (f"  ETA {eta:.1f} s" if eta is not None else "")
        )


def progress_of(job: JobItem, now: datetime | None = None) -> Progress:
    return Progress(
        state=job.state.value,
        chunks_done=job.chunks_done,
        chunk_count=job.chunk_count,
        rows=job.rows,
        bad_rows=job.bad_rows,
        elapsed=jobs.duration_seconds(job, now or datetime.now(UTC)),
    )


def watch(
    target: Target,
    job_id: str,
    *,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[JobItem]:
    """The job item each time it changes, until it ends (or ``timeout`` passes)."""
    store = jobs.store(target)
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[object, ...] | None = None
    while True:
        job = store.get(job_id)
        if job is not None:
            seen = (job.state, job.chunks_done, job.chunk_count, job.rows, job.bad_rows)
            if seen != last:
                last = seen
                yield job
            if job.state.terminal:
                return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end within {timeout:.0f} s")
        sleep(POLL_SECONDS)
