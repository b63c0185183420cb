"""The done event: what subscribers to byom's bus receive when a job ends."""

from __future__ import annotations

import logging

from shared import aws, tracing
from shared.errors import ByomError
from shared.schemas import DONE_EVENT_DETAIL_TYPE, DONE_EVENT_SOURCE, JobFinished, JobItem, JobState
from shared.settings import get_settings

log = logging.getLogger(__name__)


def job_finished(job: JobItem) -> JobFinished:
    if not job.state.terminal:
        raise ValueError(f"job {job.job_id} is {job.state}, not finished")
    finished = job.finished_at or job.updated_at
    succeeded = job.state is JobState.SUCCEEDED
    output_bucket = job.output_bucket or job.bucket  # a transform object's .out: the user's
    return JobFinished(
        job_id=job.job_id,
        status=job.state.value,  # terminal: checked above
        input_uri=f"s3://{job.input_bucket or job.bucket}/{job.input_key}",
        output_uri=f"s3://{output_bucket}/{job.output_key}" if succeeded else None,
        rows=job.rows,
        chunks=job.chunk_count,
        duration_seconds=round((finished - job.created_at).total_seconds(), 3),
        error=job.error,
        bad_rows=job.bad_rows,
        errors_uri=f"s3://{job.bucket}/{job.errors_key}" if job.errors_key else None,
        model_name=job.model_name,
        model_version=job.model_version,
        trace_id=job.trace_id,
        retries=job.retries,
    )


def publish_done(job: JobItem) -> None:
    """Put the done event on byom's bus (at least once: subscribers dedupe on job_id)."""
    detail = job_finished(job)
    with tracing.aws_call(
        "EventBridge",
        "PutEvents",
        **tracing.job_attributes(job.job_id),
        **{tracing.DONE_EVENT: True},
    ):
        response = aws.events().put_events(
            Entries=[
                {
                    "Source": DONE_EVENT_SOURCE,
                    "DetailType": DONE_EVENT_DETAIL_TYPE,
                    "Detail": detail.model_dump_json(),
                    "EventBusName": get_settings().event_bus,
                    "Resources": [detail.input_uri],
                }
            ]
        )
    if response.get("FailedEntryCount", 0):
        raise ByomError(f"could not publish the done event for job {job.job_id}: {response}")
    log.info("done event published", extra={"job_id": job.job_id, "status": detail.status})
