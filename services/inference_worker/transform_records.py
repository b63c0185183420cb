"""A transform object's records, as SageMaker Batch Transform treats them (pure Python).

The records go to the model raw (the bytes of a line, or the whole object), so
this works on bytes, one record at a time: the input filter picks what is sent,
the join puts the record as uploaded beside its answer, GenerateInferenceId adds
an id and a time, the output filter picks what is kept, and AssembleWith says
whether a newline follows each output record. The filters are byom's JSONPath
subset (``shared/selectors.py``), read the way SageMaker applies them: a CSV
record as an array of cells, a JSON record as its value.

- CSV join: the answer's cells are appended to the line as uploaded (before the
  input filter), ``,`` between.
- JSON join: an object gets the answer under ``SageMakerOutput``; any other value
  is wrapped, ``{"SageMakerInput": <record>, "SageMakerOutput": <answer>}``.
  With SplitType None the whole object is the one record, so the whole answer
  goes under ``SageMakerOutput``.
- GenerateInferenceId: JSON records get ``SageMakerInferenceId`` and
  ``SageMakerInferenceTime``; CSV records get the two as last cells. The id is a
  UUID derived from the job and the record (the same on a rerun; SageMaker's is
  random); the time is when the object was planned. An answer that is not a JSON
  object is put under ``SageMakerOutput`` first, so the two keys have a place.
- InputFilter, the model, the join (with the record as uploaded), the inference
  id, then the OutputFilter on the result. Without a join or ids, an answer that
  is not one line per record (a JSON document for a MultiRecord request) is
  filtered whole.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import ByomError
from shared.formats import JSON_TYPE, JSONL_TYPE, Format, format_of_media_type
from shared.processing import DEFAULT_JSON_KEY, JSON_INPUT_KEY
from shared.selectors import Index, Name, Selector, SelectorError, parse_selector
from shared.transform import ObjectSettings

INFERENCE_ID_KEY = "SageMakerInferenceId"
INFERENCE_TIME_KEY = "SageMakerInferenceTime"
_JSON_TYPES = {JSON_TYPE, JSONL_TYPE}


class RecordError(ByomError):
    """One record cannot be sent or its answer cannot be used; ``record`` is its
    place in the request (0-based) and ``column`` a 1-based cell, when known."""

    def __init__(self, reason: str, *, record: int = 0, column: int | None = None) -> None:
        self.reason = reason
        self.record = record
        self.column = column
        super().__init__(reason)


@dataclass(frozen=True)
class Record:
    """One record: the bytes as uploaded (no line end), its line's place in the
    chunk (0-based; the file's line number is found only when an error needs it)."""

    raw: bytes
    index: int


def is_json_type(media_type: str | None) -> bool:
    if media_type is None:
        return False
    bare = media_type.strip().lower().partition(";")[0].strip()
    return bare in _JSON_TYPES or format_of_media_type(bare) is Format.JSONL


def looks_like_json(data: bytes) -> bool:
    stripped = data.lstrip()
    return stripped[:1] in (b"{", b"[")


def split_lines(data: bytes) -> list[Record]:
    """SplitType Line: a record per line (``\\r\\n`` ends too); empty lines are not
    records, but keep their place in the count of lines."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    records = []
    for index, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            records.append(Record(line, index))
    return records


# --- CSV cells and JSON values --------------------------------------------------


def csv_cells(data: bytes) -> list[str]:
    """A CSV record's cells (quotes read as CSV reads them)."""
    try:
        return next(csv.reader([data.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"the record is not a CSV line: {exc}") from exc


def csv_line(cells: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue().encode()


def json_value(data: bytes, what: str = "the record") -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{what} is not JSON: {exc}") from exc
    except RecursionError:  # arrays nested thousands deep: refused, not a crash
        raise RecordError(f"{what} is JSON nested too deeply to read") from None


def json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except RecursionError:
        raise RecordError("the record is JSON nested too deeply to write") from None


def select_cells(
    selector: Selector, cells: list[str], setting: str
) -> tuple[list[str], tuple[int, ...]]:
    """The cells a selector picks, and their positions in ``cells``."""
    try:
        positions = selector.resolve(len(cells))
    except SelectorError as exc:
        raise RecordError(f"{setting} {selector.text!r}: {exc}") from exc
    return [cells[i] for i in positions], positions


def select_json(selector: Selector, value: Any, setting: str) -> Any:
    """What a selector picks of a JSON value: one name (``$.name``, ``$['name']``) the
    member's value (AWS's AutoGluon notebook reads ``$['class']`` so); several names
    an object of those members; indexes the elements (one index: that element;
    otherwise an array)."""
    items = selector.items
    if items is None:
        return value
    try:
        if all(isinstance(item, Name) for item in items):
            if not isinstance(value, dict):
                raise SelectorError(f"names members, but the record is a JSON {_kind(value)}")
            missing = [item.value for item in items if item.value not in value]  # type: ignore[union-attr]
            if missing:
                raise SelectorError(f"the record has no member {missing[0]!r}")
            names = [item.value for item in items]  # type: ignore[union-attr]
            if len(names) == 1:  # $.name and $['name']: the member's value
                return value[names[0]]
            return {name: value[name] for name in names}
        if not isinstance(value, list):
            raise SelectorError(f"picks by position, but the record is a JSON {_kind(value)}")
        positions = selector.resolve(len(value))
    except SelectorError as exc:
        raise RecordError(f"{setting} {selector.text!r}: {exc}") from exc
    if len(items) == 1 and isinstance(items[0], Index):
        return value[positions[0]]
    return [value[i] for i in positions]


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


# --- What one object's settings do to its records --------------------------------


@dataclass(frozen=True)
class RecordRules:
    """The object's settings, read once for its records."""

    json_input: bool  # records are JSON (ContentType, else what the first looks like)
    json_output: bool  # output records are JSON
    input_filter: Selector | None
    output_filter: Selector | None
    join: bool
    inference_id: bool

    @property
    def per_record(self) -> bool:
        """Whether each record's answer is needed on its own (else answers are kept whole)."""
        return self.join or self.output_filter is not None or self.inference_id


def rules_for(settings: ObjectSettings, first: bytes) -> RecordRules:
    json_input = (
        is_json_type(settings.content_type)
        if settings.content_type is not None
        else looks_like_json(first)
    )
    join = settings.join_source == "Input"
    if join:
        json_output = json_input
    elif settings.accept is not None:
        json_output = is_json_type(settings.accept)
    else:
        json_output = json_input
    return RecordRules(
        json_input=json_input,
        json_output=json_output,
        input_filter=_selector(settings.input_filter),
        output_filter=_selector(settings.output_filter),
        join=join,
        inference_id=settings.generate_inference_id,
    )


def _selector(text: str | None) -> Selector | None:
    if text is None:
        return None
    selector = parse_selector(text)
    return None if selector.items is None else selector


@dataclass(frozen=True)
class Sent:
    """What is sent of one record, and which input column each sent cell was."""

    body: bytes
    columns: tuple[int, ...] | None = None  # CSV with an input filter: cell -> input column


def filtered_input(rules: RecordRules, record: bytes) -> Sent:
    """The record as sent to the model: its InputFilter applied."""
    if rules.input_filter is None:
        return Sent(record)
    if rules.json_input:
        value = select_json(rules.input_filter, json_value(record), "InputFilter")
        return Sent(json_bytes(value))
    cells, positions = select_cells(rules.input_filter, csv_cells(record), "InputFilter")
    return Sent(csv_line(cells), positions)


def answer_value(answer: bytes) -> Any:
    """An answer as a JSON value when it is JSON, else its text."""
    text = answer.strip()
    try:
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return text.decode("utf-8", errors="replace")


def output_record(
    rules: RecordRules, record: bytes, answer: bytes, *, inference_id: str, inference_time: str
) -> bytes:
    """One record's output: joined, given an inference id, filtered."""
    answer = answer.rstrip(b"\r\n")
    if rules.json_output:
        value: Any
        if rules.join:
            given = json_value(record)
            if isinstance(given, dict):
                value = {**given, DEFAULT_JSON_KEY: answer_value(answer)}
            else:
                value = {JSON_INPUT_KEY: given, DEFAULT_JSON_KEY: answer_value(answer)}
        else:
            value = answer_value(answer)
        if rules.inference_id:
            if not isinstance(value, dict):
                value = {DEFAULT_JSON_KEY: value}
            value = {**value, INFERENCE_ID_KEY: inference_id, INFERENCE_TIME_KEY: inference_time}
        if rules.output_filter is not None:
            value = select_json(rules.output_filter, value, "OutputFilter")
        return json_bytes(value)
    line = record + b"," + answer if rules.join else answer
    if rules.inference_id:
        line += f",{inference_id},{inference_time}".encode()
    if rules.output_filter is None:
        return line
    cells, _ = select_cells(rules.output_filter, csv_cells(line), "OutputFilter")
    return csv_line(cells)


def answer_records(answer: bytes, records: int) -> list[bytes]:
    """A request's answer cut into one answer per record: its lines, or the elements
    of a JSON array answered on one line for several records."""
    if records == 1:
        return [answer]
    lines = answer.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    if len(lines) == records:
        return lines
    if len(lines) == 1 and looks_like_json(answer):
        value = answer_value(answer)
        if isinstance(value, list) and len(value) == records:
            return [json_bytes(item) for item in value]
    raise RecordError(
        f"the model answered {len(lines)} lines for a request of {records} records; "
        "JoinSource, OutputFilter and GenerateInferenceId need one answer line per record"
    )


def inference_id(job_id: str, chunk: int, record: int) -> str:
    """A record's inference id: a UUID, the same on every run of the same record."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"byom:{job_id}:{chunk}:{record}"))


def assembled(outputs: Sequence[bytes], assemble_with: str) -> bytes:
    """AssembleWith Line: a newline after every output record (one already there is
    kept, not doubled); None: the bytes as they are."""
    if assemble_with == "Line":
        return b"".join(o if o.endswith(b"\n") else o + b"\n" for o in outputs)
    return b"".join(outputs)
