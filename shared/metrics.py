"""CloudWatch metrics in Embedded Metric Format (Powertools), namespace ``byom``.

Metrics are printed as EMF JSON lines, which Lambda's log pipeline turns into
CloudWatch metrics with no API calls; locally they are just log lines. Batch
children's logs are not read for EMF, so a worker's chunk timings travel in its
completion message and the status function publishes them (:func:`chunk_done`).
"""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from shared.schemas import ChunkDone

NAMESPACE = "byom"
FAILURES = "JobFailures"
# Why jobs fail, the values of the Cause dimension of JobFailures.
CAUSES = ("input", "model", "unavailable", "worker", "deadline", "dead_letter", "other")

metrics = Metrics(namespace=NAMESPACE)


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def milliseconds(name: str, seconds: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 3))


def failure(cause: str) -> None:
    """One job failed, by cause: a metric of its own, since the dimension is its own."""
    cause = cause if cause in CAUSES else "other"
    with single_metric(
        name=FAILURES, unit=MetricUnit.Count, value=1, namespace=NAMESPACE
    ) as metric:
        metric.add_dimension(name="Cause", value=cause)


def chunk_done(message: ChunkDone) -> None:
    """A chunk's latency, its endpoint calls' mean latency, and the retries it took."""
    if message.attempt > 1:
        count("WorkerRetries", message.attempt - 1)
    timings = message.timings
    if timings is None:
        return
    milliseconds("ChunkLatency", timings.seconds)
    count("EndpointCalls", timings.endpoint_calls)
    count("EndpointRetries", timings.endpoint_retries)
    if timings.endpoint_calls:
        milliseconds("EndpointLatency", timings.endpoint_seconds / timings.endpoint_calls)
    if timings.endpoint_wait_seconds:
        # The cold start a scale-to-zero endpoint cost this chunk.
        milliseconds("EndpointWait", timings.endpoint_wait_seconds)


def flush() -> None:
    """Publish what was recorded; nothing at all when nothing was (no empty blobs)."""
    if metrics.metric_set:
        metrics.flush_metrics()
