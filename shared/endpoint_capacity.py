"""An endpoint without capacity: how SageMaker says so, and what byom says when it
waited too long.

A scale-to-zero endpoint hosts its model as an inference component that may have
no copies (no instances). SageMaker then answers InvokeEndpoint with HTTP 400
``ValidationError``: "Inference Component has no capacity to process this
request. ApplicationAutoScaling may be in-progress (if configured) or try to
increase the capacity by invoking UpdateInferenceComponentRuntimeConfig API."
That is a wait, not a rejected request: the caller waits for the copies, within
``BYOM_ENDPOINT_WAIT_SECONDS``.
"""

from __future__ import annotations

from datetime import datetime

from botocore.exceptions import ClientError

from shared.errors import EndpointNoCapacity
from shared.schemas import JobItem, JobState

# The HTTP status and code SageMaker gives; the message tells it from a bad request.
NO_CAPACITY_STATUS = 400
NO_CAPACITY_CODE = "ValidationError"
NO_CAPACITY_PHRASE = "no capacity"


def is_no_capacity(exc: ClientError) -> bool:
    """Whether InvokeEndpoint failed because the endpoint has no copies to answer."""
    error = exc.response.get("Error", {})
    return (
        error.get("Code") == NO_CAPACITY_CODE
        and NO_CAPACITY_PHRASE in str(error.get("Message", "")).lower()
    )


def waited_too_long(
    endpoint: str, component: str, waited: float, bound: float
) -> EndpointNoCapacity:
    """The error a chunk fails with when the endpoint stayed without capacity."""
    target = f"endpoint {endpoint}" + (f" (inference component {component})" if component else "")
    return EndpointNoCapacity(
        f"{target} had no capacity for {waited:.0f} s, past the {bound:g} s that "
        "BYOM_ENDPOINT_WAIT_SECONDS allows; it did not wake: check the component's "
        "scaling (its NoCapacityInvocationFailures alarm and step-scaling policy) "
        "and the scheduler's wake-up call in its logs"
    )


def waited(job: JobItem, now: datetime) -> float | None:
    """How long the job waited (or has been waiting) for its endpoint's capacity;
    None when it never had to."""
    if job.endpoint_waited_seconds is not None:
        return float(job.endpoint_waited_seconds)
    if job.state is JobState.WAITING_FOR_ENDPOINT and job.endpoint_wake_at is not None:
        return max(0.0, (now - job.endpoint_wake_at).total_seconds())
    return None
