"""Tracing with OpenTelemetry, in X-Ray's format, carried across SQS and Batch.

Trace ids come from the X-Ray id generator and travel as X-Ray headers, so the
spans of one upload (ingest -> scheduler -> workers -> status) form one trace in
AWS X-Ray. Across SQS the header rides in the ``AWSTraceHeader`` system
attribute, which Lambda's event source mapping hands back on the record; into a
Batch child it goes as the ``BYOM_TRACE_HEADER`` environment variable.

Spans are exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
traces-specific variable) is set, as with the ADOT collector or X-Ray's OTLP
endpoint; otherwise they are created and propagated but not exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from shared.settings import get_settings

_configured = False


def configure(service: str) -> None:
    """Install the X-Ray id generator and propagator; call once per entry point."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(
        id_generator=AwsXRayIdGenerator(),
        resource=Resource.create({"service.name": service}),
    )
    # The exporter reads the standard OTEL_* variables itself; checking for them
    # here only avoids a background exporter retrying against nothing.
    if get_settings().otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(AwsXRayPropagator())
    _configured = True


def current_header() -> str | None:
    """The X-Ray trace header of the current span, to pass downstream."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACE_HEADER_KEY)


def sqs_trace_attributes() -> Any:
    header = current_header()
    if header is None:
        return {}
    return {"AWSTraceHeader": {"StringValue": header, "DataType": "String"}}


@contextmanager
def span(name: str, parent_header: str | None = None, **attributes: Any) -> Iterator[trace.Span]:
    """A span that continues the trace in ``parent_header`` when there is one."""
    parent = propagate.extract({TRACE_HEADER_KEY: parent_header}) if parent_header else None
    token = context.attach(parent) if parent is not None else None
    try:
        with trace.get_tracer("byom").start_as_current_span(name, attributes=attributes) as current:
            yield current
    finally:
        if token is not None:
            context.detach(token)


def flush() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
