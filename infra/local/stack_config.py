"""What a local stack runs and how: the Lambda functions as the template configures them,
the worker's command, and :class:`StackConfig`, the choices of one stack (ports, names,
queue timings, what deploys instead of the working tree).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from infra.local.poller import Bundle


class Function(NamedTuple):
    """A Lambda function as the template configures it: handler, timeout, batch size."""

    handler: str
    timeout_seconds: int
    batch_size: int


# Ingest (reads and inflates the upload) and status (assembles the output) take
# one message per invocation: a slow upload must not time out a batch of others.
HANDLERS = {
    "ingest": Function("services.ingest.handler:handler", 120, 1),
    "scheduler": Function("services.scheduler.handler:handler", 60, 1),
    "status": Function("services.status.handler:handler", 300, 1),
}
DEAD_LETTERS = Function("services.status.dead_letter_handler:handler", 60, 10)
REAPER_HANDLER = "services.status.reaper_handler:handler"
WORKER_MODULE = "services.inference_worker.main"
WORKER_COMMAND = f"{sys.executable} -m {WORKER_MODULE}"


@dataclass
class StackConfig:
    model_dir: Path
    moto_port: int = 0  # 0: any free port
    bucket: str = "byom-local"
    region: str = "us-east-1"
    jobs_table: str = "byom-jobs"
    sagemaker_table: str = "byom-sagemaker"
    event_bus: str = "byom-events"
    endpoint_name: str = "byom-model"
    batch_parallel: int = 8  # children at once; they mostly wait on I/O
    # As the template sizes it: six times the longest function timeout (status's
    # 300 s), so no queue hands a message on while its function still runs.
    visibility_timeout: int = 1800
    max_receive_count: int = 5
    reaper_every_seconds: float = 30.0
    log_dir: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)  # extra BYOM_* for the services
    # The environment the user started the stack in (make up: its own), whose
    # BYOM_* and OTEL_* settings the services get (see user_settings); `settings`
    # and the stack's wiring win over it. Empty for tests: they set `settings`.
    user_env: dict[str, str] = field(default_factory=dict)
    # What deploys, instead of the working tree (infra/local/deployables.py): the
    # functions from their bundle, the worker and the model server from their
    # images' Python (each a command that runs `python -m MODULE` there).
    lambda_bundle: Bundle | None = None
    worker_command: list[str] | None = None
    model_server_command: list[str] | None = None
    model_server_env: dict[str, str] = field(default_factory=dict)
    dashboard_port: int = 0  # 0: any free port
