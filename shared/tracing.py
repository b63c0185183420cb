"""Tracing with OpenTelemetry, in X-Ray's format, carried across SQS, Batch and HTTP.

One upload is one trace: ingest's span for the S3 event is its root; every hop
hands the X-Ray header of the span that sends it to the next one, so parents
follow the work:

    process byom-ingest -> send byom-scheduler -> process byom-scheduler
      -> Batch.SubmitJob -> byom-inference-worker.child -> chunk N
        -> SageMaker Runtime.InvokeEndpoint -> (model server) POST /invocations
        -> send byom-status -> process byom-status -> EventBridge.PutEvents (the done event)

Across SQS the header rides in the ``AWSTraceHeader`` system attribute, which
Lambda's event source mapping hands back on the record; into a Batch child it
goes as the ``BYOM_TRACE_HEADER`` environment variable (a container override);
to the endpoint as the ``X-Amzn-Trace-Id`` HTTP header. Span names and
attributes follow OpenTelemetry's semantic conventions for messaging
(``messaging.*``) and AWS SDK calls (``rpc.*``, ``cloud.region``).

Spans are exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
traces-specific variable) is set (``shared/otel_export.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.aws.aws_xray_propagator import TRACE_HEADER_KEY
from opentelemetry.semconv._incubating.attributes.cloud_attributes import CLOUD_REGION
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_ID,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
    MessagingOperationTypeValues,
    MessagingSystemValues,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import (
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from shared import otel_export
from shared.settings import BatchChild, get_settings

# The job a span belongs to, on the spans that know it (the dashboard finds a
# job's trace by it as well as by the job's stored trace id).
JOB_ID = "byom.job_id"
CHUNK_INDEX = "byom.chunk_index"
DONE_EVENT = "byom.done_event"  # on the span that puts the done event
# The seconds a wait for the endpoint's capacity took (scale-to-zero endpoints).
ENDPOINT_WAITED = "byom.endpoint.waited_seconds"
ENDPOINT_WAIT_SPAN = "endpoint capacity wait"
AWS_API = "aws-api"

_configured = False


def configure(service: str) -> None:
    """Install the X-Ray id generator, propagator and exporter; once per process."""
    global _configured
    if _configured:
        return
    settings = get_settings()
    endpoint = settings.otlp_traces_endpoint or settings.otlp_endpoint
    otel_export.install(
        service,
        endpoint,
        signal_specific=settings.otlp_traces_endpoint is not None,
        **{CLOUD_REGION: settings.region},
    )
    _configured = True


def current_header() -> str | None:
    """The X-Ray trace header of the current span, to pass downstream."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACE_HEADER_KEY)


def xray_trace_id(trace_id: int) -> str:
    """A trace id as X-Ray writes it: ``1-<8 hex of epoch seconds>-<24 hex>``."""
    hex_id = f"{trace_id:032x}"
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def current_trace_id() -> str | None:
    """The X-Ray form of the current trace's id; None outside any span."""
    span_context = trace.get_current_span().get_span_context()
    return xray_trace_id(span_context.trace_id) if span_context.is_valid else None


def sqs_trace_attributes() -> Any:
    header = current_header()
    if header is None:
        return {}
    return {"AWSTraceHeader": {"StringValue": header, "DataType": "String"}}


@contextmanager
def span(
    name: str,
    parent_header: str | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: Any,
) -> Iterator[trace.Span]:
    """A span that continues the trace in ``parent_header`` when there is one."""
    parent = propagate.extract({TRACE_HEADER_KEY: parent_header}) if parent_header else None
    token = context.attach(parent) if parent is not None else None
    try:
        with trace.get_tracer("byom").start_as_current_span(
            name, kind=kind, attributes=attributes
        ) as current:
            yield current
    finally:
        if token is not None:
            context.detach(token)


@asynccontextmanager
async def span_async(name: str, **attributes: Any) -> AsyncIterator[trace.Span]:
    """``span`` for ``async with``, beside other asynchronous context managers."""
    with span(name, **attributes) as current:
        yield current


def past_span(name: str, started: float, ended: float, **attributes: Any) -> None:
    """A span for an interval that is already over (times from ``time.time()``), as a
    child of the current span: a wait seen only once it ends."""
    current = trace.get_tracer("byom").start_span(
        name, start_time=int(started * 1e9), attributes=attributes
    )
    current.end(end_time=int(ended * 1e9))


def queue_name(queue: str) -> str:
    """A queue's name from its URL (``https://…/123/name``) or ARN (``arn:…:name``)."""
    return queue.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _sqs_attributes(queue: str, operation: MessagingOperationTypeValues) -> dict[str, Any]:
    return {
        MESSAGING_SYSTEM: MessagingSystemValues.AWS_SQS.value,
        MESSAGING_DESTINATION_NAME: queue_name(queue),
        MESSAGING_OPERATION_TYPE: operation.value,
    }


@contextmanager
def consuming(
    queue: str, parent_header: str | None, message_id: str, **attributes: Any
) -> Iterator[trace.Span]:
    """The consumer span of one SQS message, continuing its sender's trace."""
    with span(
        f"process {queue_name(queue)}",
        parent_header,
        kind=SpanKind.CONSUMER,
        **_sqs_attributes(queue, MessagingOperationTypeValues.PROCESS),
        **{MESSAGING_MESSAGE_ID: message_id},
        **attributes,
    ) as current:
        yield current


@contextmanager
def sending(queue_url: str, **attributes: Any) -> Iterator[trace.Span]:
    """The producer span of one SQS message: the header sent is this span's, so the
    consumer's span is its child."""
    with span(
        f"send {queue_name(queue_url)}",
        kind=SpanKind.PRODUCER,
        **_sqs_attributes(queue_url, MessagingOperationTypeValues.SEND),
        **aws_call_attributes("SQS", "SendMessage"),
        **attributes,
    ) as current:
        yield current


def aws_call_attributes(service: str, method: str) -> dict[str, Any]:
    return {
        RPC_SYSTEM: AWS_API,
        RPC_SERVICE: service,
        RPC_METHOD: method,
        CLOUD_REGION: get_settings().region,
    }


@contextmanager
def aws_call(service: str, method: str, **attributes: Any) -> Iterator[trace.Span]:
    """A client span for one AWS API call, named ``Service.Operation`` as the AWS SDK
    conventions ask."""
    with span(
        f"{service}.{method}",
        kind=SpanKind.CLIENT,
        **aws_call_attributes(service, method),
        **attributes,
    ) as current:
        yield current


def job_attributes(job_id: str | None, chunk_index: int | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {JOB_ID: job_id} if job_id else {}
    if chunk_index is not None:
        attributes[CHUNK_INDEX] = chunk_index
    return attributes


def batch_child_attributes(child: BatchChild) -> dict[str, Any]:
    return {
        "aws.batch.job_id": child.aws_batch_job_id,
        "aws.batch.array_index": child.aws_batch_job_array_index,
        "aws.batch.attempt": child.aws_batch_job_attempt,
        JOB_ID: child.byom_job_id,
    }


def tag_current_job(job_id: str) -> None:
    trace.get_current_span().set_attribute(JOB_ID, job_id)


def failed(current: trace.Span, description: str) -> None:
    current.set_status(Status(StatusCode.ERROR, description))


def add_trace_header(request: Any, **_: Any) -> None:
    """botocore ``before-send`` handler: the current span's X-Ray header on the HTTP
    request, so that the server (the model endpoint) continues the trace."""
    header = current_header()
    if header is not None:
        request.headers[TRACE_HEADER_KEY] = header


def trace_endpoint_calls(client: Any) -> None:
    """Send the trace header with every InvokeEndpoint of this (boto3 or aiobotocore) client."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return  # not a botocore client: no HTTP request of ours to carry the header
    events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint", add_trace_header, unique_id="byom-trace"
    )


def flush() -> None:
    otel_export.flush()
