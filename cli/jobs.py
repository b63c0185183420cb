"""Reading jobs for the command line: recent ones, one by id or prefix, an upload's own."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from cli.target import Target
from services.ingest.ingest import Upload, retry_job_id, reuploaded
from shared import naming
from shared.jobs import JobStore
from shared.schemas import JobItem

MIN_PREFIX = 6  # shorter prefixes would match too much to be meant


class JobNotFound(LookupError):
    pass


def store(target: Target) -> JobStore:
    return JobStore(target.jobs_table, client=target.client("dynamodb"))


def recent(target: Target, limit: int) -> list[JobItem]:
    """The latest jobs first (a scan: the table holds one item per upload, kept by TTL)."""
    return store(target).recent(limit)


def find(target: Target, job: str) -> JobItem:
    """A job by its id or by a prefix of it that only one job has."""
    found = store(target).get(job)
    if found is not None:
        return found
    if len(job) < MIN_PREFIX:
        raise JobNotFound(f"no job {job!r} (give the id or {MIN_PREFIX}+ of its first characters)")
    matches = store(target).starting_with(job)
    if not matches:
        raise JobNotFound(f"no job {job!r} in table {target.jobs_table}")
    if len(matches) > 1:
        ids = ", ".join(sorted(m.job_id for m in matches)[:5])
        raise JobNotFound(f"{len(matches)} jobs start with {job!r}: {ids}")
    return matches[0]


def of_transform_job(target: Target, name: str) -> list[JobItem]:
    """The jobs of a SageMaker transform job's objects, in object order."""
    return store(target).of_transform_job(name)


def transform_status(target: Target, name: str) -> str | None:
    """The transform job's own status (its record), None when it cannot be read."""
    try:
        from shared.transform_store import TransformStore

        record = TransformStore(target.sagemaker_table, client=target.client("dynamodb")).get(name)
    except (ImportError, ClientError, BotoCoreError):
        # No table (an older stack) or no access: the objects' jobs still show.
        return None
    return record.status.value if record is not None else None


def job_id_for_upload(target: Target, key: str, etag: str, last_modified: datetime) -> str:
    """The job ingest makes of this upload, as ingest names it.

    The id is a hash of bucket, key and ETag; the same bytes uploaded again
    after that job FAILED or was CANCELLED are a new job, which ingest names
    from the ended job's id and the new upload's time (the rule is ingest's own).
    """
    job_id = naming.job_id_for(target.bucket, key, etag)
    existing = store(target).get(job_id)
    upload = Upload(target.bucket, key, etag, 0, {}, last_modified)
    if existing is None or not reuploaded(existing, upload):
        return job_id
    return retry_job_id(job_id, upload)


def duration_seconds(job: JobItem, now: datetime | None = None) -> float:
    """From upload to the end, or to now for a live job."""
    end = job.finished_at or (job.updated_at if job.state.terminal else now or datetime.now(UTC))
    return max(0.0, (end - job.created_at).total_seconds())


def model_label(job: JobItem) -> str:
    if job.model_name is None:
        return "default"
    return f"{job.model_name}:{job.model_version}" if job.model_version else job.model_name


def uri(job: JobItem, key: str | None) -> str | None:
    return f"s3://{job.bucket}/{key}" if key else None
