"""The local stack's trace collector: an OTLP/HTTP receiver with a small read API.

Every process of the local stack exports its spans here
(``OTEL_EXPORTER_OTLP_ENDPOINT``), as they would go to X-Ray on AWS. Spans are
kept in memory for the dashboard and tests, newest traces kept first when the
cap is reached, and appended to a JSON Lines file for anyone to read (past
``MAX_FILE_BYTES`` it moves to ``<name>.1`` and a new one starts).

It listens on 127.0.0.1, where web pages can send it requests too: like every
local server it answers only this machine's own clients (``shared.loopback``);
a body inflates to at most ``MAX_REQUEST_BYTES`` (413 past it); and it holds at most
``MAX_SPANS`` spans, its index of jobs forgetting the traces it drops.

    POST /v1/traces                 OTLP/HTTP, protobuf (optionally gzip: Content-Encoding)
    GET  /v1/spans?trace_id=ID      a trace's spans, as JSON (ID: 32 hex or X-Ray's 1-…-…)
    GET  /v1/spans?job_id=JOB       the spans of every trace that names the job
    GET  /ping

    python -m infra.local.otlp_receiver --port 4318 --store spans.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from infra.local.serving import serve_until_stopped
from shared import tracing
from shared.loopback import aiohttp_guard

log = logging.getLogger("byom.local.otlp")

PROTOBUF = "application/x-protobuf"
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_SPANS = 200_000  # in memory; the oldest traces go first past this
# On disk: past this the file moves to <name>.1 (replacing the one before) and a new
# one starts, so a stack left up for weeks keeps at most twice this of spans.
MAX_FILE_BYTES = 256 * 1024 * 1024
_HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_XRAY_TRACE_ID = re.compile(r"^1-([0-9a-f]{8})-([0-9a-f]{24})$")

KINDS = {value: name.removeprefix("SPAN_KIND_").lower() for name, value in Span.SpanKind.items()}
STATUSES = {
    value: name.removeprefix("STATUS_CODE_").lower() for name, value in Status.StatusCode.items()
}


def normalise_trace_id(text: str) -> str | None:
    """32 lowercase hex digits from either form of a trace id; None when it is neither."""
    text = text.strip().lower()
    if _HEX_TRACE_ID.match(text):
        return text
    if match := _XRAY_TRACE_ID.match(text):
        return match.group(1) + match.group(2)
    return None


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {item.key: _value(item.value) for item in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which) if which else None


def decode(body: bytes) -> list[dict[str, Any]]:
    """The spans of one export request, flattened to plain JSON values."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": KINDS.get(span.kind, "unspecified"),
                        "service": service,
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                        "status": STATUSES.get(span.status.code, "unset"),
                        "status_message": span.status.message or None,
                        "events": [
                            {
                                "name": event.name,
                                "time_ns": event.time_unix_nano,
                                "attributes": {kv.key: _value(kv.value) for kv in event.attributes},
                            }
                            for event in span.events
                        ],
                    }
                )
    return spans


class SpanStore:
    """Spans grouped by trace, in arrival order, with an index of the jobs they name.

    At most ``max_spans`` spans are held: past that the oldest traces go, and with them
    their entries in the job index (which therefore never names more jobs than there
    are spans held); a single trace past the cap keeps its newest spans."""

    def __init__(
        self, path: Path | None, max_spans: int = MAX_SPANS, max_file_bytes: int = MAX_FILE_BYTES
    ) -> None:
        self.traces: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.jobs: dict[str, set[str]] = {}  # job id -> ids of held traces naming it
        self._jobs_of_trace: dict[str, set[str]] = {}  # the same index, the other way
        self.count = 0
        self.max_spans = max_spans
        self.path = path
        self.max_file_bytes = max_file_bytes
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def add(self, spans: list[dict[str, Any]]) -> None:
        for span in spans:
            trace_id = span["trace_id"]
            self.traces.setdefault(trace_id, []).append(span)
            job_id = span["attributes"].get(tracing.JOB_ID)
            if isinstance(job_id, str):
                self.jobs.setdefault(job_id, set()).add(trace_id)
                self._jobs_of_trace.setdefault(trace_id, set()).add(job_id)
        self.count += len(spans)
        if self._file is not None and spans:
            # One write per request, so a reader never sees half of a line's batch.
            self._file.write("".join(json.dumps(span) + "\n" for span in spans))
            self._file.flush()
            if self._file.tell() > self.max_file_bytes:
                self._rotate()
        while self.count > self.max_spans and len(self.traces) > 1:
            trace_id, dropped = self.traces.popitem(last=False)
            self.count -= len(dropped)
            self._forget(trace_id)
        if self.count > self.max_spans:  # one trace alone past the cap
            only = next(iter(self.traces.values()))
            del only[: self.count - self.max_spans]
            self.count = len(only)

    def _rotate(self) -> None:
        """The full file becomes ``<name>.1``, the one before it goes, and a new one
        starts: whole batches on both sides, since it turns between two writes."""
        assert self._file is not None and self.path is not None
        self._file.close()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._file = self.path.open("a", encoding="utf-8")

    def _forget(self, trace_id: str) -> None:
        for job_id in self._jobs_of_trace.pop(trace_id, set()):
            traces = self.jobs.get(job_id, set())
            traces.discard(trace_id)
            if not traces:
                self.jobs.pop(job_id, None)

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        return sorted(self.traces.get(trace_id, []), key=lambda span: span["start_ns"])

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        trace_ids = sorted(self.jobs.get(job_id, set()) & self.traces.keys())
        return sorted(
            (span for trace_id in trace_ids for span in self.traces[trace_id]),
            key=lambda span: span["start_ns"],
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


STORE = web.AppKey("store", SpanStore)


async def receive(request: web.Request) -> web.Response:
    media_type = request.content_type
    if media_type != PROTOBUF:
        return web.json_response(
            {"error": f"Content-Type {media_type!r}: this receiver takes {PROTOBUF} only"},
            status=415,
        )
    # aiohttp inflates a Content-Encoding: gzip (or deflate) body as it reads it, a
    # piece at a time, and read() answers 413 as soon as the inflated bytes pass
    # client_max_size (MAX_REQUEST_BYTES): a gzip bomb stops there. The body read is
    # therefore protobuf already; inflating it again would refuse every gzip export.
    try:
        body = await request.read()
    except web.RequestPayloadError as exc:  # a body that does not inflate
        return web.json_response({"error": f"not an OTLP trace export: {exc}"}, status=400)
    try:
        spans = decode(body)
    except DecodeError as exc:
        return web.json_response({"error": f"not an OTLP trace export: {exc}"}, status=400)
    request.app[STORE].add(spans)
    return web.Response(
        body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF
    )


async def read_spans(request: web.Request) -> web.Response:
    store = request.app[STORE]
    if "trace_id" in request.query:
        trace_id = normalise_trace_id(request.query["trace_id"])
        if trace_id is None:
            return web.json_response(
                {"error": "trace_id: 32 hex digits or X-Ray's 1-<8 hex>-<24 hex>"}, status=400
            )
        return web.json_response({"trace_id": trace_id, "spans": store.trace(trace_id)})
    if "job_id" in request.query:
        return web.json_response({"spans": store.of_job(request.query["job_id"])})
    return web.json_response({"error": "give trace_id or job_id"}, status=400)


async def ping(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app(store: SpanStore, port: int) -> web.Application:
    """The receiver for a server on 127.0.0.1:``port``."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[aiohttp_guard(port)])
    app[STORE] = store
    app.router.add_post("/v1/traces", receive)
    app.router.add_get("/v1/spans", read_spans)
    app.router.add_get("/ping", ping)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, help="also append every span to this JSON Lines file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def serve() -> None:
        store = SpanStore(args.store)
        try:
            await serve_until_stopped(
                make_app(store, args.port), args.host, args.port,
                f"OTLP/HTTP traces on http://{args.host}:{args.port}/v1/traces", log,
            )  # fmt: skip
        finally:
            store.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
