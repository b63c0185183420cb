from __future__ import annotations

import re

from opentelemetry import trace

from shared import tracing

XRAY_HEADER = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=[01]$")


def test_trace_continues_across_a_header():
    tracing.configure("test")
    with tracing.span("producer") as producer:
        header = tracing.current_header()
        attributes = tracing.sqs_trace_attributes()
    assert header is not None and XRAY_HEADER.match(header), header
    assert attributes == {"AWSTraceHeader": {"StringValue": header, "DataType": "String"}}
    producer_context = producer.get_span_context()
    # X-Ray trace ids start with the epoch seconds, which is what the generator is for
    assert f"{producer_context.trace_id:032x}"[:8] == header.split("-")[1]

    with tracing.span("consumer", header) as consumer:
        consumer_context = consumer.get_span_context()
        assert consumer_context.trace_id == producer_context.trace_id
        assert consumer.parent is not None
        assert consumer.parent.span_id == producer_context.span_id
    assert trace.get_current_span().get_span_context().is_valid is False


def test_no_header_starts_a_new_trace():
    tracing.configure("test")
    with tracing.span("root") as root:
        assert root.parent is None
