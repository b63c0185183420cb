"""The local trace receiver (infra/local/otlp_receiver.py) over a real socket: only this
machine's clients, a bounded inflate, and an index of jobs that forgets dropped traces."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infra.local import otlp_receiver
from infra.local.otlp_receiver import PROTOBUF, SpanStore, make_app
from infra.local.processes import free_port
from shared import tracing

MIB = 1024 * 1024


def export_body(job_id: str = "job-1") -> bytes:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("ingest") as span:
        span.set_attribute(tracing.JOB_ID, job_id)
    body: bytes = encode_spans(exporter.get_finished_spans()).SerializeToString()
    return body


def gzip_of_zeros(size: int) -> bytes:
    """``size`` inflated bytes in a few hundred KiB: what a gzip bomb looks like."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    pieces = [compressor.compress(block) for _ in range(size // MIB)]
    return b"".join(pieces) + compressor.flush()


Call = tuple[str, str, dict[str, str], bytes | None]


async def _answers(calls: list[Call]) -> list[int]:
    port = free_port()
    runner = web.AppRunner(make_app(SpanStore(None), port))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    statuses = []
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for method, path, headers, body in calls:
                filled = {k: v.replace("PORT", str(port)) for k, v in headers.items()}
                async with session.request(
                    method, f"http://127.0.0.1:{port}{path}", headers=filled, data=body
                ) as response:
                    statuses.append(response.status)
                    assert "Access-Control-Allow-Origin" not in response.headers
    finally:
        await runner.cleanup()
    return statuses


def answers(calls: list[Call]) -> list[int]:
    return asyncio.run(_answers(calls))


def test_only_this_machines_clients_are_answered() -> None:
    body = export_body()
    proto = {"Content-Type": PROTOBUF}
    foreign = [
        {"Host": "evil.example:PORT"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ]
    calls: list[Call] = [("GET", "/ping", {}, None), ("POST", "/v1/traces", proto, body)]
    for headers in foreign:
        calls += [
            ("GET", "/ping", headers, None),
            ("GET", "/v1/spans?job_id=job-1", headers, None),
            ("POST", "/v1/traces", proto | headers, body),
        ]
    assert answers(calls) == [200, 200] + [403] * 3 * len(foreign)


def test_gzip_bodies_are_inflated_once_and_up_to_a_bound() -> None:
    gzipped = {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
    body = export_body()
    bomb = gzip_of_zeros(otlp_receiver.MAX_REQUEST_BYTES + MIB)
    statuses = answers(
        [
            # What an exporter with compression=gzip sends: one inflate, then protobuf.
            ("POST", "/v1/traces", gzipped, gzip.compress(body)),
            # Past the bound once inflated: refused as it inflates, not after.
            ("POST", "/v1/traces", gzipped, bomb),
            # A gzip inside the gzip is not inflated again: it is no OTLP export.
            ("POST", "/v1/traces", gzipped, gzip.compress(gzip_of_zeros(4 * MIB))),
            ("POST", "/v1/traces", gzipped, b"not gzip"),
            ("GET", "/v1/spans?job_id=job-1", {}, None),
        ]
    )
    assert statuses[:-1] == [200, 413, 400, 400]
    assert statuses[-1] == 200


def test_the_job_index_forgets_the_traces_it_drops() -> None:
    store = SpanStore(None, max_spans=10)
    for number in range(100):
        trace_id = f"{number:032x}"
        store.add(
            [
                {
                    "trace_id": trace_id,
                    "span_id": f"{number:016x}",
                    "start_ns": number,
                    "attributes": {tracing.JOB_ID: f"job-{number}"},
                }
            ]
        )
    assert len(store.traces) == 10
    assert set(store.jobs) == {f"job-{number}" for number in range(90, 100)}
    assert store.of_job("job-0") == []
    assert [span["trace_id"] for span in store.of_job("job-99")] == [f"{99:032x}"]


@pytest.mark.parametrize("jobs_per_trace", [1, 3])
def test_a_job_named_by_several_traces_keeps_the_ones_still_held(jobs_per_trace: int) -> None:
    store = SpanStore(None, max_spans=4)
    for number in range(8):
        store.add(
            [
                {
                    "trace_id": f"{number:032x}",
                    "span_id": f"{number:016x}{extra}",
                    "start_ns": number,
                    "attributes": {tracing.JOB_ID: "job-shared" if extra == 0 else f"j{extra}"},
                }
                for extra in range(jobs_per_trace)
            ]
        )
    held = {trace_id for trace_id in store.traces}
    assert {span["trace_id"] for span in store.of_job("job-shared")} == held
    assert set(store.jobs["job-shared"]) == held


def test_the_span_file_turns_over_instead_of_growing_without_end(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    store = SpanStore(path, max_file_bytes=2_000)
    for number in range(200):  # about 20 KB of spans in all
        store.add([{"trace_id": f"{number:032x}", "span_id": f"{number:016x}",
                    "start_ns": number, "attributes": {}}])  # fmt: skip
    store.close()
    older = path.with_name("spans.jsonl.1")
    # Two files at most, each at most the bound and one batch, each of whole lines.
    assert older.exists() and not path.with_name("spans.jsonl.2").exists()
    for file in (path, older):
        text = file.read_text()
        assert len(text.encode()) <= 2_000 + 200
        assert all(json.loads(line)["trace_id"] for line in text.splitlines())
    newest = json.loads(path.read_text().splitlines()[-1])
    assert newest["trace_id"] == f"{199:032x}"  # nothing was lost from the newest
