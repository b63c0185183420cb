"""One upload is one trace, across every process of the local stack, ending with the done event."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item

pytestmark = pytest.mark.integration

KIB = 1024
CHILDREN = 2
SERVICES = {
    "byom-ingest",
    "byom-scheduler",
    "byom-inference-worker",
    "byom-model-server",
    "byom-status",
}


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("tracing-stack"),
        settings={
            # Through Batch (not the scheduler's small-file path), several chunks
            # over two array children, several requests per chunk.
            "BYOM_INLINE_MAX_BYTES": "0",
            "BYOM_CHUNK_BYTES": str(96 * KIB),
            "BYOM_REQUEST_BYTES": str(32 * KIB),
            "BYOM_BYTES_PER_CHILD": str(128 * KIB),
            "BYOM_MAX_ARRAY_CHILDREN": str(CHILDREN),
            "BYOM_MAX_VCPUS": str(CHILDREN),
        },
    )
    with LocalStack(config) as stack:
        yield stack


def spans_of_trace(stack: LocalStack, trace_id: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"trace_id": trace_id})
    with urllib.request.urlopen(f"{stack.traces_url}/v1/spans?{query}", timeout=5) as response:
        spans: list[dict[str, Any]] = json.load(response)["spans"]
    return spans


def test_one_upload_is_one_trace_from_ingest_to_the_done_event(stack):
    s3, sqs = stack.client("s3"), stack.client("sqs")
    done_queue = stack.subscribe_done_events("tracing-done-events")
    buffer = io.StringIO()
    write_feature_csv(generate(1500, seed=21), buffer)
    key = "input/traced.csv"
    s3.put_object(Bucket=stack.config.bucket, Key=key, Body=buffer.getvalue().encode())
    uri = f"s3://{stack.config.bucket}/{key}"
    try:
        detail = collect_done_events(sqs, done_queue, {uri}, timeout=180)[uri]
    except TimeoutError:
        print(stack.logs())
        raise
    assert detail["status"] == "SUCCEEDED", detail
    chunks = detail["chunks"]
    assert chunks >= 3, detail

    # The done event and the job item carry the trace id, in X-Ray's form.
    trace_id = detail["trace_id"]
    assert isinstance(trace_id, str) and trace_id.startswith("1-") and len(trace_id) == 35
    item = job_item(stack.client("dynamodb"), stack.config.jobs_table, detail["job_id"])
    assert item["trace_id"] == trace_id
    hex_id = trace_id[2:10] + trace_id[11:]

    # Spans arrive in batches; the trace is complete once the done event's span and
    # one server span per endpoint call are in.
    def complete() -> bool:
        spans = spans_of_trace(stack, trace_id)
        calls = [s for s in spans if s["name"] == "SageMaker Runtime.InvokeEndpoint"]
        served = [s for s in spans if s["service"] == "byom-model-server"]
        done = [s for s in spans if s["attributes"].get("byom.done_event")]
        return bool(calls) and len(served) >= len(calls) and bool(done)

    wait_until(complete, timeout=30, what="the job's spans")
    spans = spans_of_trace(stack, trace_id)
    by_id = {span["span_id"]: span for span in spans}
    assert {span["trace_id"] for span in spans} == {hex_id}
    assert {span["service"] for span in spans} >= SERVICES

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        assert span["parent_span_id"] in by_id, f"{span['name']} has no parent in the trace"
        return by_id[span["parent_span_id"]]

    def ancestors(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent_span_id"]:
            span = parent(span)
            names.append(f"{span['service']}: {span['name']}")
        return names

    # One root: ingest's span for the S3 event; every other span hangs from it.
    roots = [span for span in spans if not span["parent_span_id"]]
    assert [(r["service"], r["name"], r["kind"]) for r in roots] == [
        ("byom-ingest", "process byom-ingest", "consumer")
    ]
    for span in spans:
        ancestors(span)  # every parent link resolves within the trace

    # ingest -> scheduler -> Batch -> every child -> chunks -> endpoint -> model server
    submit = [s for s in spans if s["name"] == "Batch.SubmitJob"]
    assert len(submit) == 1 and submit[0]["service"] == "byom-scheduler"
    assert ancestors(submit[0]) == [
        "byom-scheduler: process byom-scheduler",
        "byom-ingest: send byom-scheduler",
        "byom-ingest: process byom-ingest",
    ]
    children = [s for s in spans if s["name"] == "byom-inference-worker.child"]
    assert sorted(c["attributes"]["aws.batch.array_index"] for c in children) == list(
        range(CHILDREN)
    )
    assert all(parent(child) is submit[0] for child in children)
    scored = [s for s in spans if s["name"] == "score chunk"]
    assert sorted(s["attributes"]["byom.chunk_index"] for s in scored) == list(range(chunks))
    assert all(parent(s)["name"] == "byom-inference-worker.child" for s in scored)
    calls = [s for s in spans if s["name"] == "SageMaker Runtime.InvokeEndpoint"]
    assert len(calls) > chunks  # several requests per chunk
    assert all(parent(call)["name"] == "score chunk" for call in calls)
    served = [s for s in spans if s["service"] == "byom-model-server"]
    assert sorted(parent(s)["span_id"] for s in served) == sorted(c["span_id"] for c in calls)
    assert all(
        s["kind"] == "server" and s["attributes"]["http.response.status_code"] == 200
        for s in served
    )

    # chunk -> status queue -> status, once per chunk; the done event comes last.
    processed = [s for s in spans if s["name"] == "process byom-status"]
    assert sorted(parent(parent(s))["attributes"]["byom.chunk_index"] for s in processed) == list(
        range(chunks)
    )
    [done] = [s for s in spans if s["attributes"].get("byom.done_event")]
    assert done["service"] == "byom-status" and done["name"] == "EventBridge.PutEvents"
    assert parent(done)["name"] == "process byom-status"
    assert done["start_ns"] == max(span["start_ns"] for span in spans)

    # Semantic conventions: messaging on SQS, AWS SDK calls.
    consumer = parent(done)["attributes"]
    assert consumer["messaging.system"] == "aws_sqs"
    assert consumer["messaging.operation.type"] == "process"
    assert consumer["messaging.destination.name"] == "byom-status"
    assert consumer["messaging.message.id"]
    producer = parent(parent(done))
    assert producer["kind"] == "producer"
    assert producer["attributes"]["messaging.operation.type"] == "send"
    for call in (submit[0], done, calls[0]):
        attributes = call["attributes"]
        assert attributes["rpc.system"] == "aws-api"
        assert f"{attributes['rpc.service']}.{attributes['rpc.method']}" == call["name"]
        assert attributes["cloud.region"] == stack.config.region
    assert done["attributes"]["byom.job_id"] == detail["job_id"]

    # The receiver keeps every span on disk too, one JSON object a line.
    stored = [json.loads(line) for line in stack.spans_path.read_text().splitlines()]
    assert {span["span_id"] for span in spans} <= {span["span_id"] for span in stored}


def test_the_receiver_refuses_what_is_not_an_otlp_export(stack):
    def status(path: str, body: bytes | None = None, content_type: str | None = None) -> int:
        request = urllib.request.Request(f"{stack.traces_url}{path}", data=body)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/v1/traces", b"{}", "application/json") == 415
    assert status("/v1/traces", b"\xff\xff\xff", "application/x-protobuf") == 400
    assert status("/v1/traces", b"", "application/x-protobuf") == 200  # an empty export
    assert status("/v1/spans?trace_id=nope") == 400
    assert status("/v1/spans") == 400
    assert status("/ping") == 200
