"""byom cancel and byom retry: the services' own job control, run from the command line.

``shared/job_control.py`` reaches AWS as every service does, through byom's
settings and the ``AWS_ENDPOINT_URL*`` environment. For the command they are the
target's (the local stack's names, or a deployed stack's outputs), set for this
process only, so cancel and retry take exactly the path that StopTransformJob
and the services take.

On AWS the array is terminated at once. Locally the command knows the local
AWS endpoint only, not the local Batch runner's port: the cancelled job's
children stop before their next chunk (they check the job), and the status
service terminates the array as soon as a completion arrives for the ended job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from cli.target import LOCAL_SCHEDULER_QUEUE, Target
from shared import aws, job_control
from shared.jobs import JobStore
from shared.schemas import JobItem
from shared.settings import get_settings


def settings_of(target: Target) -> dict[str, str]:
    """The environment that points byom's services code at ``target``."""
    environment = {
        "BYOM_REGION": target.region,
        "AWS_DEFAULT_REGION": target.region,
        "BYOM_BUCKET": target.bucket,
        "BYOM_JOBS_TABLE": target.jobs_table,
        "BYOM_EVENT_BUS": target.event_bus,
        "BYOM_SAGEMAKER_TABLE": target.sagemaker_table,
    }
    if target.endpoint_url is not None:
        environment["AWS_ENDPOINT_URL"] = target.endpoint_url
    queue = target.scheduler_queue_url
    if queue is None and target.local:
        queue = target.client("sqs").get_queue_url(QueueName=LOCAL_SCHEDULER_QUEUE)["QueueUrl"]
    if queue:
        environment["BYOM_SCHEDULER_QUEUE_URL"] = queue
    return environment


def _clear_caches() -> None:
    for cached in (get_settings, aws.s3, aws.sqs, aws.dynamodb, aws.events, aws.batch):
        cached.cache_clear()


@contextmanager
def aimed_at(target: Target) -> Iterator[JobStore]:
    """Within: byom's settings and clients are the target's; restored afterwards."""
    environment = settings_of(target)
    if target.endpoint_url is not None and os.environ.get("AWS_ACCESS_KEY_ID") is None:
        # The local AWS takes any credentials (as cli/target.py's clients do).
        environment |= {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    _clear_caches()
    try:
        yield JobStore(target.jobs_table, client=target.client("dynamodb"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _clear_caches()


def cancel(target: Target, job_id: str, reason: str) -> JobItem:
    with aimed_at(target) as store:
        return job_control.cancel(job_id, reason, store)


def retry(target: Target, job_id: str) -> JobItem:
    with aimed_at(target) as store:
        return job_control.retry(job_id, store)
