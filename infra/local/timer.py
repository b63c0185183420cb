"""Invoke a handler on a fixed schedule, as an EventBridge ``rate(...)`` rule does.

The handler runs in the poller's ``Runtime``, so a run past ``--timeout-seconds``
is cut off as on Lambda and the next run starts a fresh process.

python -m infra.local.timer --every 30 --handler services.status.reaper_handler:handler
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import uuid
from datetime import UTC, datetime
from types import FrameType

from infra.local.poller import InvocationFailed, Runtime

log = logging.getLogger("byom.local.timer")


def scheduled_event() -> dict[str, object]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=float, required=True, help="seconds between runs")
    parser.add_argument("--handler", required=True, help="module:function")
    parser.add_argument("--function-name", default="byom-local-timer")
    parser.add_argument("--timeout-seconds", type=int, default=240, help="as the template's")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s timer %(message)s")
    runtime = Runtime(
        args.handler, function_name=args.function_name, timeout_seconds=args.timeout_seconds
    )
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping.wait(args.every):
            try:
                runtime.invoke(scheduled_event())
            except InvocationFailed:
                log.exception("scheduled run failed; the next one will try again")
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
