"""When a transform object's job ends, its transform job counts it (once).

Called wherever a job's ending is announced (``shared/endings.py``), so an
object's job that succeeds, fails (at ingest, in a worker, by the reaper) or is
cancelled is counted by the same call; the store's count is idempotent, so a
repeated announcement counts nothing twice. An upload's job is not touched.

A job that did not succeed has no ``.out``: one its assembly wrote just before
the job failed or was stopped is removed, if it is this job's own (its
metadata says so; an earlier job's ``.out`` at the same key is left alone).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from shared import aws
from shared.schemas import JobItem, JobState

OUTPUT_JOB_METADATA = "byom-job-id"  # on a .out: the job that wrote it


def object_job_ended(job: JobItem) -> None:
    if job.transform_job_name is None or job.transform_index is None:
        return
    if not job.state.terminal:
        return
    from shared.transform_store import TransformStore  # DynamoDB: only when needed

    failed = job.state is not JobState.SUCCEEDED
    if failed:
        remove_own_output(job)
    reason = (job.error or f"the object's job ended {job.state.value}") if failed else None
    TransformStore().object_ended(job.transform_job_name, job.transform_index, failed, reason)


def remove_own_output(job: JobItem) -> None:
    """Delete the job's ``.out`` if this job wrote it."""
    bucket = job.output_bucket or job.bucket
    s3 = aws.s3()
    try:
        head = s3.head_object(Bucket=bucket, Key=job.output_key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return
        raise
    if head.get("Metadata", {}).get(OUTPUT_JOB_METADATA) == job.job_id:
        s3.delete_object(Bucket=bucket, Key=job.output_key)
