"""CloudWatch metrics in Embedded Metric Format (Powertools), namespace ``byom``.

Metrics are printed as EMF JSON lines, which Lambda's log pipeline turns into
CloudWatch metrics with no API calls; locally they are just log lines.
"""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="byom")


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush() -> None:
    """Publish what was recorded; nothing at all when nothing was (no empty blobs)."""
    if metrics.metric_set:
        metrics.flush_metrics()
