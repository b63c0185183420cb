"""When a transform object's job ends, its transform job counts it (once).

Called wherever a job's ending is announced (``shared/endings.py``), so an
object's job that succeeds, fails (at ingest, in a worker, by the reaper) or is
cancelled is counted by the same call; the store's count is idempotent, so a
repeated announcement counts nothing twice. An upload's job is not touched.
"""

from __future__ import annotations

from shared.schemas import JobItem, JobState


def object_job_ended(job: JobItem) -> None:
    if job.transform_job_name is None or job.transform_index is None:
        return
    if not job.state.terminal:
        return
    from shared.transform_store import TransformStore  # DynamoDB: only when needed

    failed = job.state is not JobState.SUCCEEDED
    reason = (job.error or f"the object's job ended {job.state.value}") if failed else None
    TransformStore().object_ended(job.transform_job_name, job.transform_index, failed, reason)
