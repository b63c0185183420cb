"""The happy ending: assemble the output, record success, announce it."""

from __future__ import annotations

import logging

from services.status.assemble import assemble
from shared.endings import announce
from shared.jobs import JobStore
from shared.schemas import JobItem

log = logging.getLogger(__name__)


def succeed(job: JobItem, store: JobStore) -> None:
    """All chunks are in: write the output, then mark the job SUCCEEDED."""
    assemble(job)
    finished = store.succeed(job.job_id) or store.get(job.job_id)
    if finished is not None and finished.state.terminal:
        announce(finished, store)
