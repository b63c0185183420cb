"""Messages that failed every delivery end their job instead of stranding it.

Each of byom's queues has a DLQ; this handler consumes all three. It works out
which job a poison message belonged to and marks that job FAILED with the reason,
so nobody waits on a RUNNING job that can no longer finish.
"""

from __future__ import annotations

import json
import logging

from pydantic import ValidationError

from shared import logs, metrics
from shared.endings import announce, fail
from shared.jobs import JobStore, job_id_of, new_job
from shared.schemas import (
    BatchJobStateChange,
    ChunkDone,
    JobState,
    S3ObjectCreatedEvent,
    ScheduleRequest,
)

log = logging.getLogger(__name__)


def handle_dead_letter(body: str, store: JobStore | None = None) -> None:
    store = store or JobStore()
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError:
        log.error("unreadable dead letter dropped", extra={"body": body[:500]})
        return
    if not isinstance(envelope, dict):
        log.error("unreadable dead letter dropped", extra={"body": body[:500]})
        return

    if envelope.get("source") == "aws.s3":
        _upload_dead(S3ObjectCreatedEvent.model_validate(envelope), store)
        return
    if envelope.get("source") == "aws.batch":
        job_id = BatchJobStateChange.model_validate(envelope).detail.environment("BYOM_JOB_ID")
        what = "a Batch state change"
    else:
        try:
            done = ChunkDone.model_validate(envelope)
            job_id, what = done.job_id, f"the completion of chunk {done.chunk_index}"
        except ValidationError:
            try:
                job_id = ScheduleRequest.model_validate(envelope).job_id
                what = "the request to schedule it"
            except ValidationError:
                log.error("dead letter of unknown shape dropped", extra={"body": body[:500]})
                return
    if job_id:
        logs.append_job_keys(job_id)
        fail(
            job_id,
            f"{what} could not be processed after repeated attempts",
            store,
            cause="dead_letter",
        )


def _upload_dead(event: S3ObjectCreatedEvent, store: JobStore) -> None:
    """Ingest never got through this upload: record it as a FAILED job."""
    error = (
        f"s3://{event.detail.bucket.name}/{event.detail.object.key}: "
        "ingest failed on every attempt; upload the file again to retry"
    )
    job = new_job(event).model_copy(update={"state": JobState.FAILED, "error": error})
    job = job.model_copy(update={"finished_at": job.created_at})
    logs.append_job_keys(job.job_id)
    if store.create(job):
        metrics.failure("dead_letter")
        announce(job, store)
    else:
        fail(job_id_of(event), error, store, cause="dead_letter")
