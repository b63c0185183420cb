"""Where the ``byom`` command points: the local stack, or a deployed stack on AWS.

Locally every name is the local stack's default (``infra/local/stack.py``) and
the endpoint is ``make up``'s; on AWS the CloudFormation stack's outputs give
the names, so nothing has to be copied by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from infra.local.stack import REPO
from infra.local.stack_config import StackConfig

LOCAL_ENDPOINT = "http://127.0.0.1:4566"  # make up's default port
LOCAL_LOG_DIR = REPO / ".byom" / "logs"  # make up's default log directory
LOCAL_REGION = "us-east-1"

# The stack outputs the command reads (infra/cloudformation/byom.yaml).
OUTPUT_BUCKET = "DataBucketName"
OUTPUT_TABLE = "JobsTableName"
OUTPUT_BUS = "EventBusName"
OUTPUT_REGION = "Region"
OUTPUT_LOG_GROUPS = "LogGroupNames"
OUTPUT_SCHEDULER_QUEUE = "SchedulerQueueUrl"  # byom retry sends the retried run there
OUTPUT_SAGEMAKER_TABLE = "SageMakerTableName"
LOCAL_SCHEDULER_QUEUE = "byom-scheduler"  # the local stack's (infra/local/resources.py)

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)


class TargetError(Exception):
    """The command cannot tell where to point (a stack without an output, say)."""


@dataclass(frozen=True)
class Target:
    region: str
    bucket: str
    jobs_table: str
    event_bus: str
    input_prefix: str = "input/"
    endpoint_url: str | None = None  # None: AWS itself
    log_dir: Path | None = None  # local: the stack's log files
    log_groups: tuple[str, ...] = field(default=())  # AWS: the stack's log groups
    # None locally: the local stack's queue is looked up by name when needed.
    scheduler_queue_url: str | None = None
    sagemaker_table: str = "byom-sagemaker"

    @property
    def local(self) -> bool:
        """The local stack (its logs are files), not a deployed one (another endpoint or not)."""
        return self.log_dir is not None

    def client(self, service: str) -> Any:
        """One client per target and service for the command's run: `events --follow`
        polls, and the credential chain need not be walked each time."""
        return _client(self, service)


@cache
def _client(target: Target, service: str) -> Any:
    kwargs: dict[str, Any] = {"region_name": target.region, "config": _CONFIG}
    if target.endpoint_url is not None:
        kwargs["endpoint_url"] = target.endpoint_url
        if boto3.session.Session().get_credentials() is None:
            # The local AWS takes any credentials; don't make the user invent some.
            kwargs |= {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]


def local_target(
    endpoint_url: str = LOCAL_ENDPOINT,
    *,
    region: str = LOCAL_REGION,
    bucket: str | None = None,
    log_dir: Path | None = None,
) -> Target:
    defaults = StackConfig(model_dir=Path())
    return Target(
        region=region,
        bucket=bucket or defaults.bucket,
        jobs_table=defaults.jobs_table,
        event_bus=defaults.event_bus,
        endpoint_url=endpoint_url,
        log_dir=log_dir or LOCAL_LOG_DIR,
    )


def from_outputs(outputs: dict[str, str], *, region: str, endpoint_url: str | None) -> Target:
    """A deployed stack's outputs as a target; a missing output is named."""
    missing = [o for o in (OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_BUS) if not outputs.get(o)]
    if missing:
        raise TargetError(
            f"the stack has no output {', '.join(missing)}; is it byom's template "
            "(infra/cloudformation/byom.yaml)?"
        )
    groups = tuple(g for g in outputs.get(OUTPUT_LOG_GROUPS, "").split(",") if g)
    return Target(
        region=outputs.get(OUTPUT_REGION) or region,
        bucket=outputs[OUTPUT_BUCKET],
        jobs_table=outputs[OUTPUT_TABLE],
        event_bus=outputs[OUTPUT_BUS],
        endpoint_url=endpoint_url,
        log_groups=groups,
        scheduler_queue_url=outputs.get(OUTPUT_SCHEDULER_QUEUE) or None,
        sagemaker_table=outputs.get(OUTPUT_SAGEMAKER_TABLE) or "byom-sagemaker",
    )


def stack_target(stack: str, *, region: str | None, endpoint_url: str | None = None) -> Target:
    """The names a deployed CloudFormation stack gives in its outputs."""
    session_region = region or boto3.session.Session().region_name or LOCAL_REGION
    kwargs: dict[str, Any] = {"region_name": session_region, "config": _CONFIG}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    cloudformation = boto3.client("cloudformation", **kwargs)
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except cloudformation.exceptions.ClientError as exc:
        raise TargetError(f"stack {stack!r} in {session_region}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return from_outputs(outputs, region=session_region, endpoint_url=endpoint_url)
