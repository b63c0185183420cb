"""Status: count chunk completions once, finish the job, announce it.

Safe to run any number of times for the same message: counting is a conditional
write, assembly is repeatable, and the done event is sent until it is recorded
as sent (subscribers dedupe on ``job_id``).
"""

from __future__ import annotations

import logging

from services.status.assemble import assemble, remove_staging
from shared.events import publish_done
from shared.jobs import JobStore
from shared.schemas import ChunkDone, JobItem

log = logging.getLogger(__name__)


def handle_chunk_done(message: ChunkDone, store: JobStore | None = None) -> None:
    store = store or JobStore()
    if message.failure is not None:
        failure = message.failure
        reason = f"chunk {message.chunk_index} failed after {message.attempt} attempt(s): "
        reason += failure.reason
        failed = store.fail(message.job_id, reason)
        job = failed or store.get(message.job_id)
        if job is not None and job.state.terminal:
            announce(job, store)
        return

    recorded = store.record_chunk(message.job_id, message.chunk_index, message.rows)
    if recorded is None:
        log.warning("completion for an unknown job", extra={"job_id": message.job_id})
        return
    job = recorded.job
    if job.state.terminal:
        announce(job, store)
        return
    if not recorded.first_time:
        log.info("duplicate completion", extra={"job_id": job.job_id, "chunk": message.chunk_index})
    if recorded.all_done:
        finish(job, store)


def finish(job: JobItem, store: JobStore) -> None:
    assemble(job)
    finished = store.succeed(job.job_id) or store.get(job.job_id)
    if finished is not None and finished.state.terminal:
        announce(finished, store)


def announce(job: JobItem, store: JobStore) -> None:
    """Send the done event unless it went out already, then tidy the staging area."""
    if store.event_sent(job.job_id):
        return
    publish_done(job)
    store.mark_event_sent(job.job_id)
    remove_staging(job)
    log.info(
        "job finished",
        extra={"job_id": job.job_id, "state": job.state.value, "rows": job.rows},
    )
