"""Small files without Batch: the scheduler scores a one-chunk job itself.

On AWS a Batch array costs a container start (tens of seconds on Fargate) before
the first row is scored; a file of a few hundred KiB takes about a second through
the endpoint. At or below ``BYOM_INLINE_MAX_BYTES`` of rows the scheduler does
the worker's job for chunk 0 (the whole of the rows, ``[plan.data_start,
plan.size)``): the same checks, the same endpoint, the same chunk output object
and errors object, the same ``ChunkDone`` to the status queue. The status
service then finishes the job exactly as it does for an array.

An endpoint that throttles, answers 5xx or cannot be reached is retried as the
workers retry it (``services/inference_worker/endpoint.py``): up to
``BYOM_INVOKE_ATTEMPTS`` calls per request with full-jitter exponential backoff
(``BYOM_INVOKE_BACKOFF_SECONDS`` doubling, at most ``BYOM_INVOKE_BACKOFF_MAX_SECONDS``
a wait), and never past :data:`RETRY_BUDGET_SECONDS`. When they run out, the
chunk is reported failed ("unavailable", with the last error), and the job ends
FAILED saying why, as a worker's last attempt does. It is never left to the
scheduler queue's redelivery, which would hold the job RUNNING for the queue's
visibility timeout (30 minutes) times its receives. Uploading the same bytes
again later makes a new job (see ingest), which succeeds once the endpoint does.

Kept light for the Lambda bundle: boto3 and the pure-Python row checks only.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

from shared import aws, chunk_output, chunk_timer, endpoint_capacity, logs, naming, tracing
from shared.csvchunks import count_lines, split_records
from shared.errors import ByomError, EndpointUnavailable, InputError, ModelError
from shared.formats import CSV_TYPE
from shared.rows import check_rows, find_problems
from shared.schemas import BadRows, ChunkDone, ChunkFailure, ChunkPlan, JobItem
from shared.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

log = logging.getLogger(__name__)

CSV = CSV_TYPE
_REQUESTS_IN_FLIGHT = 4  # a small file is a handful of requests
# The scheduler function's timeout is 60 s: retries stop early enough for the
# failure to be reported within it (the defaults' waits add up to 12.4 s at most).
RETRY_BUDGET_SECONDS = 40.0
# A request is at most BYOM_REQUEST_BYTES of a small file, scored in about a second;
# a hung endpoint must not take the function's whole minute in one call.
_READ_TIMEOUT_SECONDS = 20


class _Transient(Exception):
    """A call that may succeed if made again: throttled, 5xx, or no answer."""


def eligible(plan: ChunkPlan, settings: Settings) -> bool:
    if plan.media is not None:  # images and video are decoded by the workers only
        return False
    if plan.transform is not None:  # raw records, the workers' transform scorer only
        return False
    rows_bytes = plan.size - plan.data_start
    # Formats, filters and joins need the workers' pyarrow: not in this bundle.
    plain = plan.processing is None
    return plain and len(plan.chunks) == 1 and 0 < rows_bytes <= settings.inline_max_bytes


@dataclass(frozen=True)
class Checked:
    rows: int
    payload: bytes  # the good rows, one per line
    rejected: dict[int, InputError] = field(default_factory=dict)


def check(data: bytes, plan: ChunkPlan, *, first_line: int, columns: int, uri: str) -> Checked:
    """The worker's checks: the first bad row fails (FAIL), or bad rows are set aside."""
    if plan.policy.on_bad_rows is BadRows.FAIL:
        rows = check_rows(data, first_line=first_line, columns=columns, uri=uri)
        return Checked(rows=rows, payload=data)
    rejected = dict(find_problems(data, first_line=first_line, columns=columns, uri=uri))
    lines = chunk_output.lines_of(data)
    last_line = first_line + len(lines) - 1
    plan.policy.enforce(rejected, uri=uri, what=f"bad rows in lines {first_line}-{last_line}")
    if not rejected:
        return Checked(rows=len(lines), payload=data)
    payload = b"".join(line + b"\n" for i, line in enumerate(lines) if i not in rejected)
    return Checked(rows=len(lines), payload=payload, rejected=rejected)


def requests_of(payload: bytes, max_bytes: int, max_rows: int | None = None) -> list[bytes]:
    """Whole lines, at most ``max_bytes`` and ``max_rows`` a request (a longer line alone)."""
    return split_records(payload, max_bytes, max_rows)


@cache
def _runtime(region: str) -> SageMakerRuntimeClient:
    # botocore's own retries are off: one policy, the workers', decides (retrying).
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=_REQUESTS_IN_FLIGHT,
        read_timeout=_READ_TIMEOUT_SECONDS,
    )
    client: SageMakerRuntimeClient = boto3.session.Session().client(
        "sagemaker-runtime", region_name=region, config=config
    )
    tracing.trace_endpoint_calls(client)
    return client


class NoCapacity(ByomError):
    """The endpoint has no copies to answer with (a scale-to-zero endpoint, idle): the
    scheduler wakes it and hands the job to Batch, whose workers can wait for it."""


def _invoke(
    runtime: SageMakerRuntimeClient,
    endpoint: str,
    body: bytes,
    target_model: str | None = None,
    component: str = "",
) -> bytes:
    # A multi-model endpoint is told which model to use; a single-model one is not.
    target = {"TargetModel": target_model} if target_model else {}
    if component:
        target["InferenceComponentName"] = component
    started = time.monotonic()
    try:
        with tracing.aws_call("SageMaker Runtime", "InvokeEndpoint"):
            response = runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType=CSV, Accept=CSV, Body=body, **target
            )
    except (ConnectionError, HTTPClientError, ReadTimeoutError) as exc:
        raise _Transient(f"endpoint {endpoint}: {type(exc).__name__}: {exc}") from exc
    except ClientError as exc:
        if endpoint_capacity.is_no_capacity(exc):
            raise NoCapacity(f"endpoint {endpoint} has no capacity") from exc
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error.get("Code") == "ModelError":
            # SageMaker wraps any container error in a 424; the container's own
            # status says whether a retry can help.
            original: Any = exc.response.get("OriginalStatusCode")
            status = int(original) if original else status
        message = error.get("Message", str(exc))
        if status < 500 and status != 429:
            raise ModelError(f"the endpoint rejected the request: {message}") from exc
        raise _Transient(f"endpoint {endpoint}: HTTP {status}: {message}") from exc
    try:
        body_out: bytes = response["Body"].read()
    except (ConnectionError, HTTPClientError, ReadTimeoutError) as exc:
        raise _Transient(f"endpoint {endpoint}: {type(exc).__name__}: {exc}") from exc
    chunk_timer.endpoint_call(time.monotonic() - started)
    return body_out


def retrying(call: Callable[[], bytes], endpoint: str, settings: Settings) -> bytes:
    """``call`` until it answers, as the workers retry: at most ``invoke_attempts``
    calls, full-jitter exponential backoff, within :data:`RETRY_BUDGET_SECONDS`.

    Raises :class:`EndpointUnavailable` with the last error when they run out; a
    :class:`ModelError` (the model rejected the rows) is never retried.
    """
    deadline = time.monotonic() + RETRY_BUDGET_SECONDS
    last_error, made = "no attempt made", 0
    for attempt in range(1, settings.invoke_attempts + 1):
        made = attempt
        try:
            return call()
        except _Transient as exc:
            last_error = str(exc)
        if attempt == settings.invoke_attempts:
            break
        ceiling = min(
            settings.invoke_backoff_max_seconds, settings.invoke_backoff_seconds * 2**attempt
        )
        delay = random.uniform(0, ceiling)
        if time.monotonic() + delay > deadline:
            break
        chunk_timer.endpoint_retry()
        log.info("retrying endpoint call", extra={"attempt": attempt, "error": last_error})
        time.sleep(delay)
    raise EndpointUnavailable(f"endpoint {endpoint} failed {made} times; last error: {last_error}")


def _call(
    runtime: SageMakerRuntimeClient,
    endpoint: str,
    body: bytes,
    target_model: str | None,
    component: str,
) -> Callable[[], bytes]:
    return lambda: _invoke(runtime, endpoint, body, target_model, component)


def predict(
    payload: bytes,
    rows: int,
    settings: Settings,
    target_model: str | None = None,
    plan: ChunkPlan | None = None,
) -> bytes:
    """One prediction line per good row, in order, in requests within the model's limits."""
    if not rows:
        return b""
    runtime = _runtime(settings.region)
    max_bytes, max_rows = (
        plan.request_limits(settings.request_bytes) if plan else (settings.request_bytes, None)
    )
    pieces = requests_of(payload, max_bytes, max_rows)
    with ThreadPoolExecutor(max_workers=min(_REQUESTS_IN_FLIGHT, len(pieces))) as pool:
        # Each call runs in a copy of this context, so it joins this trace and
        # reaches this chunk's timer.
        calls = [
            pool.submit(
                contextvars.copy_context().run,
                retrying,
                _call(
                    runtime,
                    settings.endpoint_name,
                    piece,
                    target_model,
                    settings.inference_component,
                ),
                settings.endpoint_name,
                settings,
            )
            for piece in pieces
        ]
        answers = [call.result() for call in calls]
    output = chunk_output.checked_answers(answers, [count_lines(piece) for piece in pieces])
    predictions = output.count(b"\n")
    if predictions != rows:
        raise ModelError(f"the endpoint returned {predictions} predictions for {rows} rows")
    return output


def _stored(plan: ChunkPlan) -> ChunkDone | None:
    """The completion of an earlier delivery that scored the chunk and then died."""
    key = naming.chunk_output_key(plan.job_id, 0)
    try:
        head = aws.s3().head_object(Bucket=plan.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    counts = chunk_output.counts(head.get("Metadata", {}))
    if counts is None:
        return None
    return ChunkDone(
        job_id=plan.job_id, chunk_index=0, attempt=1, rows=counts[0], bad_rows=counts[1],
        output_key=key, output_bytes=head["ContentLength"],
    )  # fmt: skip


def _score(plan: ChunkPlan, job: JobItem, settings: Settings) -> ChunkDone:
    s3 = aws.s3()
    response = s3.get_object(
        Bucket=plan.bucket,
        Key=plan.key,
        Range=f"bytes={plan.data_start}-{plan.size - 1}",
        IfMatch=aws.if_match(plan.etag),
    )
    data = response["Body"].read()
    uri = f"s3://{job.bucket}/{job.input_key}"  # errors name the upload, not staging
    first_line = 2 if plan.header else 1
    columns = plan.columns or settings.feature_count
    checked = check(data, plan, first_line=first_line, columns=columns, uri=uri)
    output = predict(
        checked.payload, checked.rows - len(checked.rejected), settings, plan.target_model, plan
    )
    if checked.rejected:
        output = chunk_output.with_blanks(output, checked.rows, checked.rejected)
        s3.put_object(
            Bucket=plan.bucket,
            Key=naming.chunk_errors_key(plan.job_id, 0),
            Body=chunk_output.errors_csv(checked.rejected),
            ContentType=CSV,
        )
    if plan.output_header is not None:
        output = chunk_output.header_line(plan.output_header, output) + output
    key = naming.chunk_output_key(plan.job_id, 0)
    s3.put_object(
        Bucket=plan.bucket,
        Key=key,
        Body=output,
        ContentType=CSV,
        Metadata=chunk_output.metadata(checked.rows, len(checked.rejected)),
    )
    return ChunkDone(
        job_id=plan.job_id, chunk_index=0, attempt=1, rows=checked.rows,
        bad_rows=len(checked.rejected), output_key=key, output_bytes=len(output),
    )  # fmt: skip


def score_inline(plan: ChunkPlan, job: JobItem, settings: Settings) -> ChunkDone:
    """Score the job's one chunk and report it to the status queue, as a worker would.

    Bad input, model errors and an endpoint still unavailable after the retries
    (see :func:`retrying`) are reported as the chunk's failure, which fails the
    job with the reason; only a failure to read or write S3 or SQS raises, for
    the scheduler queue to deliver the request again, and :class:`NoCapacity`, for
    the scheduler to wake the endpoint and run the job on Batch.
    """
    logs.append_job_keys(plan.job_id, chunk_index=0)
    chunk_timer.start()
    try:
        message = _stored(plan) or _score(plan, job, settings)
    except InputError as exc:
        failure = ChunkFailure(
            kind="input", reason=exc.describe(), line=exc.line, column=exc.column
        )
        message = ChunkDone(job_id=plan.job_id, chunk_index=0, attempt=1, rows=0, failure=failure)
    except ModelError as exc:
        failure = ChunkFailure(kind="model", reason=f"ModelError: {exc}")
        message = ChunkDone(job_id=plan.job_id, chunk_index=0, attempt=1, rows=0, failure=failure)
    except EndpointUnavailable as exc:
        failure = ChunkFailure(kind="unavailable", reason=f"EndpointUnavailable: {exc}")
        message = ChunkDone(job_id=plan.job_id, chunk_index=0, attempt=1, rows=0, failure=failure)
    message = message.model_copy(update={"timings": chunk_timer.timings()})
    with tracing.sending(settings.status_queue_url, **tracing.job_attributes(plan.job_id, 0)):
        aws.sqs().send_message(
            QueueUrl=settings.status_queue_url,
            MessageBody=message.model_dump_json(),
            MessageSystemAttributes=tracing.sqs_trace_attributes(),
        )
    log.info(
        "scored without Batch",
        extra={"job_id": plan.job_id, "rows": message.rows, "failed": bool(message.failure)},
    )
    return message
