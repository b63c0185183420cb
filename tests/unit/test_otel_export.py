from __future__ import annotations

import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from infra.local.otlp_receiver import decode, normalise_trace_id
from shared import otel_export, tracing


def test_traces_url_follows_the_exporter_specification():
    assert (
        otel_export.traces_url("http://h:4318", signal_specific=False) == "http://h:4318/v1/traces"
    )
    assert (
        otel_export.traces_url("http://h:4318/", signal_specific=False) == "http://h:4318/v1/traces"
    )
    assert otel_export.traces_url("http://h/custom", signal_specific=True) == "http://h/custom"


def test_only_xray_endpoints_are_signed():
    assert otel_export.xray_region("https://xray.eu-west-1.amazonaws.com/v1/traces") == "eu-west-1"
    assert (
        otel_export.xray_region("https://xray.cn-north-1.amazonaws.com.cn/v1/traces")
        == "cn-north-1"
    )
    assert otel_export.xray_region("http://127.0.0.1:4318/v1/traces") is None
    assert otel_export.xray_region("https://xray.eu-west-1.amazonaws.com.evil.example/v1") is None


def test_exports_to_xray_are_signed_for_xray_in_its_region(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    request = requests.Request(
        "POST",
        "https://xray.eu-west-1.amazonaws.com/v1/traces",
        data=b"\x0a\x00",
        headers={"Content-Type": "application/x-protobuf"},
    ).prepare()
    signed = otel_export.SigV4Auth("eu-west-1")(request)
    authorization = signed.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/xray/aws4_request" in authorization
    assert signed.headers["X-Amz-Security-Token"] == "token"
    assert "X-Amz-Date" in signed.headers


def test_the_endpoint_call_carries_the_callers_trace_header():
    tracing.configure("test")

    class Request:
        headers: dict[str, str] = {}

    with tracing.aws_call("SageMaker Runtime", "InvokeEndpoint") as call:
        request = Request()
        tracing.add_trace_header(request)
    span_id = f"{call.get_span_context().span_id:016x}"
    assert f"Parent={span_id}" in request.headers["X-Amzn-Trace-Id"]


def test_the_receiver_decodes_what_the_exporter_sends():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span(
            "send q", kind=SpanKind.PRODUCER, attributes={"n": 3, "ok": True, "tags": ["a", "b"]}
        ),
    ):
        pass
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    spans = {span["name"]: span for span in decode(body)}
    trace_id = f"{parent.get_span_context().trace_id:032x}"
    assert spans["send q"]["trace_id"] == spans["parent"]["trace_id"] == trace_id
    assert spans["send q"]["parent_span_id"] == spans["parent"]["span_id"]
    assert spans["parent"]["parent_span_id"] is None
    assert spans["send q"]["kind"] == "producer"
    assert spans["send q"]["attributes"] == {"n": 3, "ok": True, "tags": ["a", "b"]}
    assert spans["send q"]["start_ns"] <= spans["send q"]["end_ns"]


def test_trace_ids_are_read_in_both_forms():
    hex_id = "6b0ec2adb3aec728cf7b247fbfc112e7"
    assert normalise_trace_id(hex_id) == hex_id
    assert normalise_trace_id("1-6b0ec2ad-b3aec728cf7b247fbfc112e7") == hex_id
    assert normalise_trace_id(tracing.xray_trace_id(int(hex_id, 16))) == hex_id
    assert normalise_trace_id("1-6b0ec2ad-xyz") is None
    assert normalise_trace_id("") is None
