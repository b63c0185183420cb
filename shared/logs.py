"""Structured JSON logging for entry points (handlers, worker, local runners).

Modules log with ``logging.getLogger(__name__)`` and pass ``extra={"job_id": ...}``;
only entry points call :func:`configure`, which routes every logger through
Powertools' JSON formatter so CloudWatch and the local console see the same lines.
"""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter


def configure(service: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LambdaPowertoolsFormatter(service=service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "aiobotocore", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
