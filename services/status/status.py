"""Status: count chunk completions once, finish the job, announce it.

Safe to run any number of times for the same message: counting is a conditional
write, assembly is repeatable, and the done event is sent until it is recorded
as sent (subscribers dedupe on ``job_id``).
"""

from __future__ import annotations

import json
import logging

from botocore.exceptions import BotoCoreError, ClientError

from services.status.assemble import assemble_group, group_members
from services.status.batch_events import handle_batch_event
from services.status.finish import succeed, too_many_bad_rows
from shared import metrics
from shared.endings import announce, fail, remove_chunk_staging
from shared.jobs import JobStore
from shared.schemas import BatchJobStateChange, ChunkDone, JobItem
from shared.settings import get_settings

log = logging.getLogger(__name__)


def handle_status_message(body: str) -> None:
    """The status queue carries worker completions and Batch's state-change events."""
    if json.loads(body).get("source") == "aws.batch":
        handle_batch_event(BatchJobStateChange.model_validate_json(body))
    else:
        handle_chunk_done(ChunkDone.model_validate_json(body))


def handle_chunk_done(message: ChunkDone, store: JobStore | None = None) -> None:
    store = store or JobStore()
    if message.failure is not None:
        failure = message.failure
        metrics.chunk_done(message)
        if failure.kind == "input":
            # The user's file is at fault: lead with where, as the reason does.
            reason = failure.reason
        else:
            reason = (
                f"chunk {message.chunk_index} failed after {message.attempt} attempt(s): "
                f"{failure.reason}"
            )
        failed = fail(message.job_id, reason, store, cause=failure.kind)
        if failed is not None:
            remove_chunk_staging(failed, message.chunk_index)
        return

    waited = message.timings.endpoint_wait_seconds if message.timings else 0.0
    recorded = store.record_chunk(
        message.job_id, message.chunk_index, message.rows, message.bad_rows, waited
    )
    if recorded is None:
        log.warning("completion for an unknown job", extra={"job_id": message.job_id})
        return
    job = recorded.job
    if recorded.first_time:
        metrics.chunk_done(message)
    if job.state.terminal:
        # A late worker (its job ended, its array terminated) wrote this chunk
        # after staging was removed: every write is followed by its completion,
        # so sweeping here leaves nothing behind.
        remove_chunk_staging(job, message.chunk_index)
        announce(job, store)
        return
    if not recorded.first_time:
        log.info("duplicate completion", extra={"job_id": job.job_id, "chunk": message.chunk_index})
    if job.policy.too_many(job.bad_rows):
        too_many_bad_rows(job, store)
        return
    if recorded.first_time and not recorded.all_done:
        _join_group_if_done(job, message.chunk_index)
    # A redelivered last completion lands here too: the crash it follows may have
    # come between counting and assembling, so assembly runs again (it is repeatable).
    if recorded.all_done:
        succeed(job, store)


def _join_group_if_done(job: JobItem, chunk_index: int) -> None:
    """This chunk may complete its group: join the group for a server-side copy."""
    group = chunk_index // get_settings().output_group_chunks
    members = group_members(job, group)
    if len(members) > 1 and all(index in job.done_chunks for index in members):
        try:
            assemble_group(job, group)
        except (ClientError, BotoCoreError):
            # Only an optimisation: the final assembly reads the members instead.
            log.warning("group not joined", extra={"job_id": job.job_id, "group": group})
