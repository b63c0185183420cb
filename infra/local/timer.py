"""Invoke a handler on a fixed schedule, as an EventBridge ``rate(...)`` rule does.

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

from infra.local.poller import LambdaContext, load_handler

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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s timer %(message)s")
    handler = load_handler(args.handler)
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.wait(args.every):
        try:
            handler(scheduled_event(), LambdaContext(args.function_name, timeout_seconds=60))
        except Exception:
            log.exception("scheduled run failed; the next one will try again")


if __name__ == "__main__":
    main()
