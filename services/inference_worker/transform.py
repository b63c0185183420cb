"""Score one chunk of a SageMaker transform object: raw records, sent as SageMaker sends them.

SplitType Line: the chunk's lines (aligned by the same reader as CSV chunks), a
record each; SplitType None: the whole object, one record. Each record has the
InputFilter applied, then records go in requests per BatchStrategy
(SingleRecord: one each; MultiRecord: as many whole records as fit
MaxPayloadInMB), at most MaxConcurrentTransforms in flight, each attempt held to
InvocationsTimeoutInSeconds and retried up to InvocationsMaxRetries times. The
answers are joined, given inference ids and filtered per record
(``transform_records.py``) and assembled per AssembleWith.

A record that cannot be sent or answered fails the object at once (no retry
of the child: the request's own retries were spent), its reason naming the
object, the line and, where the model says, the column.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.inference_worker.endpoint import Endpoint
from services.inference_worker.scoring import (
    ChunkResult,
    get_range,
    line_number_at,
    read_lines,
    store_chunk,
)
from services.inference_worker.transform_records import (
    Record,
    RecordError,
    RecordRules,
    Sent,
    answer_records,
    assembled,
    filtered_input,
    inference_id,
    output_record,
    rules_for,
    split_lines,
)
from shared.errors import EndpointNoCapacity, EndpointUnavailable, InputError, ModelError
from shared.schemas import Chunk, ChunkPlan, TransformSource
from shared.settings import Settings
from shared.transform import ObjectSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_NO_LIMIT_LINE = 100 * 1024 * 1024  # MaxPayloadInMB's own maximum
_OUTPUT_TYPE = "application/octet-stream"
# Where a model's error names a place in its request ("line 3, column 4: ...").
_PLACE = re.compile(r"\bline (\d+)(?:, column (\d+))?(?::\s*)?")

# One endpoint per job and runtime client, so MaxConcurrentTransforms holds
# across the chunks a child scores at once.
_ENDPOINTS: dict[tuple[int, str], Endpoint] = {}


def transform_endpoint(base: Endpoint, plan: ChunkPlan, settings: Settings) -> Endpoint:
    source = plan.transform
    assert source is not None
    key = (id(base.client), plan.job_id)
    if key not in _ENDPOINTS:
        _ENDPOINTS[key] = Endpoint(
            base.client,
            base.name,
            concurrency=source.settings.max_concurrent,
            attempts=source.settings.invocations_max_retries + 1,
            backoff=settings.invoke_backoff_seconds,
            backoff_max=settings.invoke_backoff_max_seconds,
            target_model=source.target_model,
            timeout=source.settings.invocations_timeout_seconds,
            inference_component=base.inference_component,
            wait_seconds=base.wait_seconds,
            wait_poll_max=base.wait_poll_max,
        )
    return _ENDPOINTS[key]


def batches(sent: list[Sent], settings: ObjectSettings) -> list[list[int]]:
    """The records of each request, by place; ``RecordError`` for a record that no
    request can hold."""
    limit = settings.max_payload_bytes
    if limit is not None:
        for place, item in enumerate(sent):
            if len(item.body) > limit:
                raise RecordError(
                    f"the record is {len(item.body)} bytes, over MaxPayloadInMB "
                    f"({limit} bytes); a record is never split",
                    record=place,
                )
    if settings.batch_strategy == "SingleRecord":
        return [[place] for place in range(len(sent))]
    groups: list[list[int]] = []
    size = 0
    for place, item in enumerate(sent):
        cost = len(item.body) + 1  # and its newline
        if groups and (limit is None or size + cost <= limit):
            groups[-1].append(place)
            size += cost
        else:
            groups.append([place])
            size = cost
    return groups


def request_body(sent: list[Sent], group: list[int]) -> bytes:
    if len(group) == 1:
        return sent[group[0]].body
    return b"".join(sent[place].body + b"\n" for place in group)


class _Located(Exception):
    """A failure at a record of the chunk, before its file line is known."""

    def __init__(self, reason: str, record: int, column: int | None, request_line: int | None):
        super().__init__(reason)
        self.reason, self.record, self.column = reason, record, column
        self.request_line = request_line  # SplitType None: the line the model named


def _model_place(
    message: str, group: list[int], sent: list[Sent]
) -> tuple[str, int, int | None, int | None]:
    """The model's error with its place moved from the request to the records: the
    reason without the place, the record, the column in the input, the request line."""
    match = _PLACE.search(message)
    if match is None:
        return message, group[0], None, None
    line = int(match.group(1))
    column = int(match.group(2)) if match.group(2) else None
    reason = message[: match.start()] + message[match.end() :]
    place = group[min(max(line, 1), len(group)) - 1]
    mapped = sent[place].columns
    if column is not None and mapped is not None and 1 <= column <= len(mapped):
        column = mapped[column - 1] + 1  # a cell of the filtered record -> the input's
    return reason, place, column, line


async def _answer(
    endpoint: Endpoint, settings: ObjectSettings, sent: list[Sent], group: list[int]
) -> bytes:
    try:
        return await endpoint.invoke(
            request_body(sent, group), content_type=settings.content_type, accept=settings.accept
        )
    except ModelError as exc:
        reason, place, column, line = _model_place(str(exc), group, sent)
        raise _Located(f"the model rejected the record: {reason}", place, column, line) from exc
    except EndpointNoCapacity:
        raise  # the endpoint never woke: no record is to blame
    except EndpointUnavailable as exc:
        tries = settings.invocations_max_retries + 1
        raise _Located(
            f"no answer for the request holding this record after {tries} attempt(s) "
            f"(InvocationsTimeoutInSeconds {settings.invocations_timeout_seconds}, "
            f"InvocationsMaxRetries {settings.invocations_max_retries}): {exc}",
            group[0],
            None,
            None,
        ) from exc


def chunk_output(
    rules: RecordRules,
    settings: ObjectSettings,
    records: list[Record],
    groups: list[list[int]],
    answers: list[bytes],
    *,
    job_id: str,
    chunk: int,
    inference_time: str = "",
) -> bytes:
    """The chunk's output bytes: per record when joins, filters or ids need it, else
    each request's answer as it came."""
    if not rules.per_record:
        return assembled(answers, settings.assemble_with)
    now = inference_time or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    outputs: list[bytes] = []
    for group, answer in zip(groups, answers, strict=True):
        try:
            pieces = answer_records(answer, len(group))
        except RecordError as exc:
            if rules.join or rules.inference_id:
                raise _Located(exc.reason, group[0], None, None) from exc
            # Only an output filter, and an answer that is not a line per record
            # (one JSON document for the request): filtered whole, as SageMaker does.
            try:
                outputs.append(
                    output_record(rules, b"", answer, inference_id="", inference_time="")
                )
            except RecordError as failure:
                raise _Located(failure.reason, group[0], failure.column, None) from failure
            continue
        for place, piece in zip(group, pieces, strict=True):
            record = records[place]
            identity = inference_id(job_id, chunk, record.index)
            try:
                outputs.append(
                    output_record(
                        rules, record.raw, piece, inference_id=identity, inference_time=now
                    )
                )
            except RecordError as exc:
                raise _Located(exc.reason, place, exc.column, None) from exc
    return assembled(outputs, settings.assemble_with)


async def score_transform(
    s3: S3Client,
    endpoint: Endpoint,
    plan: ChunkPlan,
    chunk: Chunk,
    *,
    uri: str,
    output_key: str,
    settings: Settings,
) -> ChunkResult:
    source = plan.transform
    assert source is not None, "a transform chunk needs a transform plan"
    object_settings = source.settings
    uri = source.input_uri  # errors name the user's object, not staging
    first = 0
    if object_settings.split_type == "Line":
        first, data = await _read_records(s3, plan, chunk, source, settings, uri)
        records = split_lines(data)
    else:
        records = [Record(await get_range(s3, plan, 0, plan.size), 0)]
    if not records:
        return await store_chunk(
            s3, plan, chunk, b"", rows=0, rejected={}, content_type=_OUTPUT_TYPE
        )
    try:
        rules = rules_for(object_settings, records[0].raw)
        sent = []
        for place, record in enumerate(records):
            try:
                sent.append(filtered_input(rules, record.raw))
            except RecordError as exc:
                raise _Located(exc.reason, place, exc.column, None) from exc
        try:
            groups = batches(sent, object_settings)
        except RecordError as exc:
            raise _Located(exc.reason, exc.record, None, None) from exc
        scorer = transform_endpoint(endpoint, plan, settings)
        answers = list(
            await asyncio.gather(
                *(_answer(scorer, object_settings, sent, group) for group in groups)
            )
        )
        output = await asyncio.to_thread(
            chunk_output, rules, object_settings, records, groups, answers,
            job_id=plan.job_id, chunk=chunk.index, inference_time=source.inference_time,
        )  # fmt: skip
    except _Located as exc:
        raise await _input_error(s3, plan, first, records, exc, source, uri) from None
    return await store_chunk(
        s3, plan, chunk, output, rows=len(records), rejected={},
        content_type=object_settings.accept or _OUTPUT_TYPE,
    )  # fmt: skip


async def _read_records(
    s3: S3Client,
    plan: ChunkPlan,
    chunk: Chunk,
    source: TransformSource,
    settings: Settings,
    uri: str,
) -> tuple[int, bytes]:
    payload = source.settings.max_payload_bytes
    limit = payload + 2 if payload is not None else max(settings.max_line_bytes, _NO_LIMIT_LINE)
    try:
        return await read_lines(s3, plan, chunk, max_line_bytes=limit, uri=uri)
    except InputError as exc:
        if payload is None or exc.line is None:
            raise
        raise InputError(
            uri,
            f"the record is longer than MaxPayloadInMB ({payload} bytes); a record is never split",
            line=exc.line,
        ) from None


async def _input_error(
    s3: S3Client,
    plan: ChunkPlan,
    first: int,
    records: list[Record],
    failure: _Located,
    source: TransformSource,
    uri: str,
) -> InputError:
    """The failure at its place in the user's object: line (and column)."""
    if source.settings.split_type == "Line":
        first_line = await line_number_at(s3, plan, first)
        line = first_line + records[failure.record].index
    else:
        line = failure.request_line or 1
    return InputError(uri, failure.reason, line=line, column=failure.column)
