"""A chunk's output records: the input joined with its predictions, filtered, formatted.

Built column by column in pyarrow (no Python object per row): the prediction
columns come from the endpoint's CSV answer, a label from a threshold, the
metadata columns are constants; a CSV line is its cells joined with ``,`` (the
uploaded line itself when the whole input row is joined unfiltered), a JSON
Lines record is the uploaded object with the prediction spliced in under
``SageMakerOutput`` (or ``{"SageMakerInput": [...], "SageMakerOutput": ...}``
for an array, as SageMaker does). A rejected record gets an empty line, so
output line *n* is still input record *n*.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from services.inference_worker.records import Records, concatenated
from shared.errors import ByomError, ModelError
from shared.processing import JSON_INPUT_KEY, Format, Processing, label_position
from shared.schemas import ChunkPlan
from shared.selectors import SelectorError, parse_selector

_JSON_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
_NEEDS_QUOTES = r'[,"\r\n]'


def prediction_columns(answer: bytes, rows: int) -> list[pa.Array]:
    """The endpoint's CSV answer (one line per row) as text columns."""
    if rows == 0:
        return []
    first = answer[: answer.find(b"\n")] if b"\n" in answer else answer
    width = first.count(b",") + 1
    names = [f"p{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(answer),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ModelError(f"the endpoint's answer is not CSV of {width} columns: {exc}") from exc
    if table.num_rows != rows:  # quoted line ends in the answer: its lines are not its rows
        raise ModelError(f"the endpoint returned {table.num_rows} predictions for {rows} rows")
    return [table.column(i).combine_chunks() for i in range(width)]


def _constant(value: str, rows: int) -> pa.Array:
    return pc.fill_null(pa.nulls(rows, pa.string()), value)


def extra_columns(
    processing: Processing,
    plan: ChunkPlan,
    predictions: list[pa.Array],
    rows: int,
    scored_at: datetime,
) -> list[pa.Array]:
    """The label (from a threshold) and the metadata columns asked for."""
    extra: list[pa.Array] = []
    if processing.threshold is not None and rows == 0:
        extra.append(pa.array([], pa.string()))
    elif processing.threshold is not None:
        if len(predictions) != 1:
            raise ByomError(
                f"byom-threshold needs one probability per row; the model gives {len(predictions)}"
            )
        negative, positive = processing.classes or ("0", "1")
        above = pc.greater_equal(pc.cast(predictions[0], pa.float64()), processing.threshold)
        extra.append(pc.if_else(above, positive, negative))
    values = {
        "job_id": plan.job_id,
        "model_name": plan.model_name or "",
        "model_version": plan.model_version or "",
        "scored_at": scored_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    extra += [_constant(values[name], rows) for name in processing.metadata]
    return extra


def _csv_cell(column: pa.Array) -> pa.Array:
    """Cells quoted where CSV needs it (a comma, quote or line end inside)."""
    text = column if pa.types.is_string(column.type) else column.cast(pa.string())
    needs = pc.match_substring_regex(text, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)


def _json_value(column: pa.Array) -> pa.Array:
    """Text cells as JSON values: numbers as they are, anything else as a string."""
    number = pc.match_substring_regex(column, _JSON_NUMBER)
    if pc.all(number).as_py():
        return column
    escaped = pc.replace_substring(pc.replace_substring(column, "\\", "\\\\"), '"', '\\"')
    for char, code in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        escaped = pc.replace_substring(escaped, char, code)
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    return pc.if_else(number, column, quoted)


def _scatter(lines: pa.Array, records: Records) -> bytes:
    """Every record's line in input order: the good ones, and empty ones where rejected."""
    if len(records.good) == records.rows:
        chosen = lines
    else:
        padded = pa.concat_arrays(
            [lines.cast(pa.large_binary()), pa.array([b""], pa.large_binary())]
        )
        index = np.full(records.rows, len(lines), dtype=np.int64)
        index[records.good] = np.arange(len(lines))
        chosen = padded.take(pa.array(index))
    if len(chosen) == 0:
        return b""
    ended = pc.binary_join_element_wise(
        chosen.cast(pa.large_binary()),
        pa.scalar(b"", pa.large_binary()),
        pa.scalar(b"\n", pa.large_binary()),
    )
    return concatenated(ended)


def csv_records(
    processing: Processing, records: Records, predictions: list[pa.Array], extra: list[pa.Array]
) -> tuple[bytes, list[str]]:
    """CSV lines for the chunk's records and the output's column names."""
    names = processing.output_names(len(predictions))
    added = [*predictions, *extra]
    whole_rows = processing.join and processing.output_filter is None
    if whole_rows and records.lines is not None and processing.content is Format.CSV:
        # The uploaded line itself, as it was, then the new cells.
        cells = [records.lines.cast(pa.binary()), *(_csv_cell(c).cast(pa.binary()) for c in added)]
    else:
        joined = [*(records.columns if processing.join else []), *added]
        joined, names = _output_filtered(processing, joined, names)
        cells = [_csv_cell(c) for c in joined]
    if not cells or len(cells[0]) == 0:
        return _scatter(pa.array([], pa.binary()), records), names
    binary = [c.cast(pa.binary()) for c in cells]
    lines = pc.binary_join_element_wise(*binary, b",") if len(binary) > 1 else binary[0]
    return _scatter(lines, records), names


def jsonl_records(
    processing: Processing, records: Records, predictions: list[pa.Array], extra: list[pa.Array]
) -> bytes:
    """JSON Lines for the chunk's records: each input record with its prediction."""
    if len(records.good) == 0:
        return _scatter(pa.array([], pa.binary()), records)
    values = [_json_value(c) for c in predictions]
    if len(values) == 1:
        prediction = values[0]
    else:
        prediction = pc.binary_join_element_wise(
            "[", pc.binary_join_element_wise(*values, ","), "]", ""
        )
    key = f'"{processing.json_key}":'
    names = processing.output_names(len(predictions))[-len(extra) :] if extra else []
    parts: list[pa.Array | str] = [key, prediction]
    for name, column in zip(names, extra, strict=True):
        parts += [f',"{name}":', _json_value(column)]
    if processing.join and processing.records == "objects":
        assert records.lines is not None
        text = records.lines.cast(pa.string())
        head = pc.replace_substring_regex(text, r"\s*\}\s*$", "")
        opening = pc.if_else(pc.match_substring_regex(head, r"\{\s*$"), "", ",")
        line = pc.binary_join_element_wise(head, opening, *parts, "}", "")
    elif processing.join:
        assert records.lines is not None
        text = records.lines.cast(pa.string())
        line = pc.binary_join_element_wise(f'{{"{JSON_INPUT_KEY}":', text, ",", *parts, "}", "")
    else:
        line = pc.binary_join_element_wise("{", *parts, "}", "")
    return _scatter(line, records)


def _typed_predictions(processing: Processing, predictions: list[pa.Array]) -> list[pa.Array]:
    """Prediction columns as numbers (text only for class names, which are text)."""
    label = label_position(processing.prediction_names, len(predictions))
    return [
        column
        if processing.classes is not None and position == label
        else pc.cast(column, pa.float64())
        for position, column in enumerate(predictions)
    ]


def parquet_records(
    processing: Processing, records: Records, predictions: list[pa.Array], extra: list[pa.Array]
) -> bytes:
    """One Parquet file of the chunk's records (a rejected one is a row of nulls).

    Written without page indexes or bloom filters, so that the status service
    can move its row groups into the job's one output file as they are.
    """
    if not predictions:  # no good record: empty columns, typed as in the other parts
        predictions = [pa.array([], pa.string()) for _ in processing.prediction_names]
    names = processing.output_names(len(predictions))
    added = [*_typed_predictions(processing, predictions), *extra]
    if processing.threshold is not None and processing.classes is None and extra:
        added[len(predictions)] = pc.cast(added[len(predictions)], pa.int64())
    inputs = records.typed if records.typed is not None else records.columns
    joined = [*(inputs if processing.join else []), *added]
    joined, names = _output_filtered(processing, joined, names)
    table = pa.Table.from_arrays(joined, names=names)
    if len(records.good) != records.rows:
        index = np.zeros(records.rows, dtype=np.int64)
        index[records.good] = np.arange(len(records.good))
        missing = np.ones(records.rows, dtype=bool)
        missing[records.good] = False
        table = table.take(pa.array(index, mask=missing)) if len(table) else _nulls(table, records)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, write_page_index=False, write_statistics=True)
    return buffer.getvalue()


def _nulls(table: pa.Table, records: Records) -> pa.Table:
    return pa.table({n: pa.nulls(records.rows, c.type) for n, c in zip(
        table.column_names, table.columns, strict=True)})  # fmt: skip


def _output_filtered(
    processing: Processing, joined: list[pa.Array], names: list[str]
) -> tuple[list[pa.Array], list[str]]:
    """The joined record's columns and names that the output filter keeps."""
    if processing.output_filter is None:
        return joined, names
    try:
        chosen = parse_selector(processing.output_filter).resolve(len(names), names)
    except SelectorError as exc:
        raise ByomError(f"byom-output-filter={processing.output_filter!r}: {exc}") from exc
    return [joined[i] for i in chosen], [names[i] for i in chosen]


def header_line(names: list[str]) -> bytes:
    """The CSV output's first line: the joined record's names."""
    cells = [
        f'"{n.replace(chr(34), chr(34) * 2)}"' if any(c in n for c in ',"\r\n') else n
        for n in names
    ]
    return (",".join(cells) + "\n").encode()
