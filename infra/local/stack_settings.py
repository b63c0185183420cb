"""Which settings the local stack's services get: the user's own, and the stack's wiring.

``make up`` runs in the user's environment. Every ``BYOM_*`` and ``OTEL_*`` setting
there passes to the services, except the stack's wiring (:data:`WIRING`: names,
queue URLs, endpoints, the model server's reach), which the stack always sets
itself, so a service can never be pointed away from the local stack. ``AWS_*`` is
all wiring (the local endpoints and their test credentials): none of the user's
is kept, so no real credentials reach a local process. The user's OTLP endpoint
gets every span as well as the stack's own receiver.
"""

from __future__ import annotations

import os

from infra.local.poller import BUNDLE_PATH_VARIABLE, BUNDLE_PYTHON_VARIABLE
from shared.otel_export import ALSO_EXPORT_VARIABLE, traces_url

# The stack's own wiring among the BYOM_* names: where the services find the
# bucket, table, bus, queues, Batch and the endpoint, and how the model server
# is reached. The stack sets these; a user's value is ignored.
WIRING = frozenset(
    {
        "BYOM_REGION",
        "BYOM_BUCKET",
        "BYOM_JOBS_TABLE",
        "BYOM_SAGEMAKER_TABLE",
        "BYOM_INGEST_QUEUE_URL",
        "BYOM_EXECUTION_PARAMETERS_URL",
        "BYOM_ACCOUNT_ID",
        "BYOM_EVENT_BUS",
        "BYOM_ENDPOINT_NAME",
        "BYOM_SCHEDULER_QUEUE_URL",
        "BYOM_STATUS_QUEUE_URL",
        "BYOM_BATCH_JOB_QUEUE",
        "BYOM_BATCH_JOB_DEFINITION",
        "BYOM_MODEL_DATA_PREFIX",
        "BYOM_MODEL_SERVER_HOST",
        "BYOM_FAULT_API",
        "BYOM_LOOPBACK_ONLY",  # the model server answers this machine only
        "BYOM_LOCAL_ZYGOTE_ENV_ROOM",
        BUNDLE_PYTHON_VARIABLE,
        BUNDLE_PATH_VARIABLE,
        # A Batch child's own (the scheduler and the runner set them per child).
        "BYOM_JOB_ID",
        "BYOM_PLAN_KEY",
        "BYOM_ARRAY_SIZE",
        "BYOM_TRACE_HEADER",
        ALSO_EXPORT_VARIABLE,
    }
)
# The standard OTLP endpoint variables are wiring too: the stack points them at
# its receiver and sends the user's collector every span besides.
_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# The stack's defaults, which a user's settings override.
STACK_DEFAULTS = {
    # The local "compute environment" is this machine: arrays get no more
    # children than it has CPUs, as MaxVcpus caps them on AWS.
    "BYOM_MAX_VCPUS": str(os.cpu_count() or 1),
    # Spans reach the local receiver soon after they end.
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}


def user_settings(environ: dict[str, str]) -> dict[str, str]:
    """The ``BYOM_*`` and ``OTEL_*`` settings of ``environ`` a user may change."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(("BYOM_", "OTEL_")) and name not in WIRING | set(_OTLP_ENDPOINTS)
    }


def user_traces_url(environ: dict[str, str]) -> str | None:
    """The user's own collector, as the OTLP exporter would derive its traces URL."""
    if specific := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces_url(specific, signal_specific=True)
    if general := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return traces_url(general, signal_specific=False)
    return None
