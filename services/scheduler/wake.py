"""Wake a scale-to-zero endpoint for a job: ask for a copy when it has none.

A scale-to-zero endpoint hosts its model as an inference component whose copies
(and instances) scale in to zero when idle. A job that finds it at zero asks for
one copy (UpdateInferenceComponentRuntimeConfig, DesiredCopyCount 1) instead of
failing; the instance takes minutes to provision, and the job's item says
``WAITING_FOR_ENDPOINT`` meanwhile. A component already asked for (desired above
zero, copies not there yet) is not asked again: a burst of jobs wakes it once.

Scaling back in after idle is the component's scaling policy's job, not byom's.
If the scheduler cannot read or wake the component, the job goes on: the workers
wait for capacity within their bound, and the component's NoCapacityInvocationFailures
alarm wakes it as well.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shared import tracing
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    copies: int  # copies serving now
    desired: int  # copies asked for, before this call
    woken: bool  # this call asked for a copy


def capacity(settings: Settings, sagemaker: Any) -> Capacity | None:
    """The component's copies, after asking for one if it had none and none was asked
    for; None when the endpoint has no component or its state cannot be read."""
    component = settings.inference_component
    if not component:
        return None
    try:
        with tracing.aws_call("SageMaker", "DescribeInferenceComponent"):
            described = sagemaker.describe_inference_component(InferenceComponentName=component)
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "cannot read the endpoint's capacity; scheduling as if it had some",
            extra={"inference_component": component, "error": str(exc)},
        )
        return None
    runtime = described.get("RuntimeConfig") or {}
    copies = int(runtime.get("CurrentCopyCount") or 0)
    desired = int(runtime.get("DesiredCopyCount") or 0)
    if copies > 0 or desired > 0:
        return Capacity(copies=copies, desired=desired, woken=False)
    try:
        with tracing.aws_call("SageMaker", "UpdateInferenceComponentRuntimeConfig"):
            sagemaker.update_inference_component_runtime_config(
                InferenceComponentName=component, DesiredRuntimeConfig={"CopyCount": 1}
            )
    except (ClientError, BotoCoreError) as exc:
        # Another scheduler's wake may be under way (an update in progress); the
        # alarm's step-scaling policy wakes the component in any case.
        log.warning(
            "could not wake the endpoint; its scaling alarm will",
            extra={"inference_component": component, "error": str(exc)},
        )
        return Capacity(copies=0, desired=0, woken=False)
    log.info("endpoint woken for a job", extra={"inference_component": component})
    return Capacity(copies=0, desired=0, woken=True)
