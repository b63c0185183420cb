"""``make up``: keep the local stack running in the foreground until Ctrl-C.

The stack keeps the settings of the environment it is started in (``BYOM_*``,
``OTEL_*``) except its own wiring; ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pydantic_settings import BaseSettings

from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from infra.local.stack_readiness import ModelRefused
from infra.local.stack_settings import STACK_DEFAULTS, WIRING
from model.package import is_archive


def _names(tree: type[BaseSettings]) -> dict[str, str]:
    """Each setting's environment name and default, as the tree reads them."""
    prefix = tree.model_config.get("env_prefix", "")
    found: dict[str, str] = {}
    for name, field in tree.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names = [str(c) for c in choices] if choices else [str(alias or f"{prefix}{name}")]
        default = "" if field.is_required() or field.default is None else field.default
        for env_name in names:
            found[env_name.upper()] = "(computed)" if field.default_factory else str(default)
    return found


def settings_help() -> str:
    """What a user may set for the stack's services, with the defaults."""
    from model.server.settings import ServerSettings
    from shared.settings import Settings

    names = _names(Settings) | _names(ServerSettings) | STACK_DEFAULTS
    kept = {
        name: default
        for name, default in names.items()
        if name.startswith(("BYOM_", "OTEL_")) and name not in WIRING
    }
    width = max(map(len, kept))
    lines = [f"  {name:<{width}}  {default}" for name, default in sorted(kept.items())]
    return "\n".join(
        [
            "settings: the stack's services take these from this environment (default shown);",
            "the stack's own wiring (names, queues, endpoints, AWS_*) is always its own, and",
            "spans go to its trace receiver and to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT too.",
            "Any other OTEL_* variable passes through as well.",
            *lines,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=REPO / "model" / "artifacts",
        help="the model package: a directory or a model.tar.gz (the model server extracts it)",
    )
    parser.add_argument("--port", type=int, default=4566, help="the local AWS endpoint's port")
    parser.add_argument("--bucket", default="byom-local")
    parser.add_argument(
        "--dashboard-port", type=int, default=0, help="the job dashboard's port (0: any free one)"
    )
    parser.add_argument("--log-dir", type=Path, default=REPO / ".byom" / "logs")
    args = parser.parse_args()
    if not args.model_dir.is_dir() and not (
        is_archive(args.model_dir) and args.model_dir.is_file()
    ):
        parser.error(f"--model-dir {args.model_dir}: not a directory or a .tar.gz / .tgz file")

    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    config = StackConfig(
        model_dir=args.model_dir.resolve(),
        moto_port=args.port,
        bucket=args.bucket,
        log_dir=args.log_dir,
        dashboard_port=args.dashboard_port,
        user_env=dict(os.environ),
    )
    try:
        serve(config, args.bucket, stopping)
    except ModelRefused as refused:
        # The package's own fault, not the stack's: say why, without a traceback
        # (every process started so far is stopped already).
        print(f"byom up: {refused}", file=sys.stderr)
        sys.exit(1)
    print("stopped.")


def serve(config: StackConfig, bucket: str, stopping: threading.Event) -> None:
    """Run the stack until `stopping` is set; the banner says where everything is."""
    with LocalStack(config) as stack:
        done_queue = stack.subscribe_done_events("byom-done-events")
        endpoint = stack.endpoint_url
        print(
            f"""byom's local stack is up (logs in {stack.log_dir}).

  upload:   aws s3 cp my.csv s3://{bucket}/input/ --endpoint-url {endpoint}
  outputs:  aws s3 ls s3://{bucket}/output/ --endpoint-url {endpoint}
  jobs:     aws dynamodb scan --table-name {config.jobs_table} --endpoint-url {endpoint}
  events:   aws sqs receive-message --queue-url {done_queue} --endpoint-url {endpoint}
  byom:     export AWS_ENDPOINT_URL={endpoint} BYOM_LOG_DIR={stack.log_dir}
            byom submit my.csv --wait; byom status; byom events --follow; byom logs JOB

  dashboard: {stack.dashboard_url}/
  model:    http://127.0.0.1:{stack.model_port} (the endpoint {config.endpoint_name})
  traces:   OTLP/HTTP receiver {stack.traces_url}/v1/traces, spans in {stack.spans_path}
  logs:     {stack.log_dir}/<service>.log

(the AWS CLI needs credentials of any value, e.g. AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1)
Ctrl-C stops everything.""",
            flush=True,
        )
        while not stopping.wait(1.0):
            stack.check_alive()


if __name__ == "__main__":
    main()
