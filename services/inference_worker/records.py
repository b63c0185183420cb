"""A chunk of a real file read once into columns, its features checked by the one grammar.

CSV rows and JSON Lines arrays go through pyarrow's CSV reader with every column
as text; JSON Lines objects through pyarrow's JSON reader (Parquet row groups:
``parquet_records.py``). The features (the plan's resolved input filter) are
taken as whole columns, joined into CSV text and parsed by the same vectorised
parser as a plain chunk (``parse.py``), so every format accepts exactly the
numbers ``shared/rows.py`` accepts, and a bad cell is named the same way.

Nothing here loops over rows on the way through: a Python pass over lines runs
only when the vectorised reader refused the chunk, to find which lines it
refused and read the others again.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from services.inference_worker.parse import parse_rows
from shared.errors import InputError
from shared.processing import Processing
from shared.rows import shorten, split_cells


@dataclass
class Records:
    """A chunk's records: what the model takes and what the output joins back."""

    rows: int  # records in the chunk, good and bad
    values: np.ndarray  # (good records, features) float32, in order
    good: np.ndarray  # positions (in the chunk) of the good records, ascending
    columns: list[pa.Array]  # every input column, as text, for the good records
    lines: pa.Array | None = None  # the good records' lines as uploaded (CSV, JSON Lines)
    rejected: dict[int, InputError] = field(default_factory=dict)  # position -> problem
    typed: list[pa.Array] | None = None  # Parquet input: the good rows' columns, typed


def text_lines(data: bytes) -> pa.Array:
    """The lines of ``data`` (no line ends) as one binary array, split in C++."""
    if not data:
        return pa.array([], pa.binary())
    lines = pc.list_flatten(pc.split_pattern(pa.array([data], pa.binary()), b"\n"))
    if data.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    return pc.replace_substring_regex(lines, r"\r$", b"")


def _csv_table(data: bytes, width: int) -> pa.Table | None:
    """Every cell as text, or None when pyarrow refuses the lines (ragged, bad quotes)."""
    if not data.endswith(b"\n"):
        data += b"\n"
    names = [f"c{i}" for i in range(width)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return table if table.num_rows == data.count(b"\n") else None


def _row_problem(line: bytes, processing: Processing, uri: str, number: int) -> InputError | None:
    """Why pyarrow could not read this line as a record of the plan's width (Python; error path)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return InputError(uri, "is not UTF-8 text", line=number)
    if processing.records in ("objects", "arrays"):
        try:
            record = json.loads(text)
        except ValueError as exc:
            return InputError(uri, f"is not a JSON record: {exc}", line=number)
        if processing.records == "objects":
            if not isinstance(record, dict):
                return InputError(uri, "expected a JSON object, as on the first line", line=number)
            return None
        if not isinstance(record, list):
            return InputError(uri, "expected a JSON array, as on the first line", line=number)
        if len(record) != processing.width:
            return InputError(
                uri, f"expected {processing.width} values, found {len(record)}", line=number
            )
        return None
    if not text.strip():
        return InputError(uri, "empty line; every line must be a record", line=number)
    cells = split_cells(text)
    if isinstance(cells, str):
        return InputError(uri, cells, line=number)
    if len(cells) != processing.width:
        return InputError(
            uri,
            f"expected {processing.width} columns, found {len(cells)}",
            line=number,
            column=min(len(cells), processing.width) + 1,
        )
    return None


def _array_cells(lines: pa.Array) -> bytes:
    """JSON arrays, one a line, as CSV text: the brackets taken off, in C++."""
    inner = pc.replace_substring_regex(lines, r"^\s*\[|\]\s*$", b"")
    return _joined_lines(inner)


def _joined_lines(lines: pa.Array) -> bytes:
    if len(lines) == 0:
        return b""
    binary = lines.cast(pa.binary())
    ended = pc.binary_join_element_wise(binary, pa.scalar(b"", pa.binary()), b"\n")
    return concatenated(ended)


def concatenated(array: pa.Array) -> bytes:
    """The values of a binary/string array back to back, without a Python object each."""
    array = array.cast(pa.large_binary())
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = array.buffers()[2]
    if data is None:
        return b""
    whole: bytes = data.to_pybytes()
    return whole[int(offsets[0]) : int(offsets[-1])]


def _table_of(lines: pa.Array, processing: Processing) -> pa.Table | None:
    data = _joined_lines(lines)
    if processing.records == "objects":
        try:
            table = pajson.read_json(
                io.BytesIO(data), read_options=pajson.ReadOptions(use_threads=False)
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        return table if table.num_rows == len(lines) else None
    if processing.records == "arrays":
        data = _array_cells(lines)
    return _csv_table(data, processing.width)


def _text_of(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _array_of(value: object) -> list[str | None] | None:
    """An array feature's values as text; anything but an array is None (a misfit)."""
    if not isinstance(value, list):
        return None
    return [_text_of(v) for v in value]


def _python_table(lines: pa.Array, processing: Processing) -> pa.Table:
    """Records read one by one with ``json`` (error path only), every value as text.

    A key whose first record held an array of several features stays an array
    column (a record holding anything else there is a misfit, one bad row); an
    array of one under a one-feature key counts as its value.
    """
    records = [json.loads(line) for line in lines.to_pylist()]
    if processing.records == "objects":
        names = list(dict.fromkeys([*processing.input_names(), *(k for r in records for k in r)]))
        arrays = {
            name
            for name, width in zip(
                processing.feature_names or (), processing.feature_widths or (), strict=False
            )
            if width > 1
        }
        table: dict[str, pa.Array] = {}
        for name in names:
            values = [r.get(name) for r in records]
            if name in arrays:
                table[name] = pa.array([_array_of(v) for v in values], pa.list_(pa.string()))
                continue
            if name in (processing.feature_names or ()):
                values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]
            table[name] = pa.array([_text_of(v) for v in values], pa.string())
        return pa.table(table)
    return pa.table(
        {
            f"c{i}": pa.array([_text_of(r[i]) for r in records], pa.string())
            for i in range(processing.width)
        }
    )


def as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One column as text (numbers as their shortest decimal; missing: empty)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(array.type):
        return pc.fill_null(array, "")
    try:
        return pc.fill_null(pc.cast(array, pa.string()), "")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Nested JSON values: their JSON text is what the output shows.
        text = [None if v is None else json.dumps(v) for v in array.to_pylist()]
        return pc.fill_null(pa.array(text, pa.string()), "")


def read_line_records(
    data: bytes, processing: Processing, *, uri: str, max_line_bytes: int | None = None
) -> Records:
    """The CSV rows or JSON Lines records of ``data`` (whole lines).

    Lines are numbered from 1 within ``data``; the caller shifts them.
    """
    lines = text_lines(data)
    rows = len(lines)
    rejected: dict[int, InputError] = {}
    if max_line_bytes:
        lengths = pc.binary_length(lines).to_numpy(zero_copy_only=False)
        for index in np.flatnonzero(lengths > max_line_bytes):
            rejected[int(index)] = InputError(
                uri,
                f"the line is longer than the {max_line_bytes}-byte limit (BYOM_MAX_LINE_BYTES)",
                line=int(index) + 1,
            )
    candidates = np.setdiff1d(np.arange(rows), np.fromiter(rejected, dtype=np.int64))
    subset = lines if not rejected else lines.take(pa.array(candidates))
    table = _table_of(subset, processing) if rows else None
    if table is None and rows:
        # Error path: find the lines pyarrow refused, one by one, and read the rest again.
        for index in candidates:
            problem = _row_problem(lines[int(index)].as_py(), processing, uri, int(index) + 1)
            if problem is not None:
                rejected[int(index)] = problem
        candidates = np.setdiff1d(np.arange(rows), np.fromiter(rejected, dtype=np.int64))
        subset = lines.take(pa.array(candidates))
        table = _table_of(subset, processing) if len(candidates) else None
        if table is None and len(candidates) and processing.records != "rows":
            # JSON values of mixed types (a string where others have numbers): the
            # records are read one by one, their values as text for the grammar.
            table = _python_table(subset, processing)
        if table is None and len(candidates):
            for index in candidates:  # a quoting problem only the whole chunk showed
                rejected[int(index)] = InputError(
                    uri, "the record cannot be read with its neighbours", line=int(index) + 1
                )
            candidates = candidates[:0]
    if table is None:
        empty = np.empty((0, len(processing.features)), dtype=np.float32)
        columns = [pa.array([], pa.string()) for _ in processing.input_names()]
        return Records(
            rows, empty, candidates, columns, subset.slice(0, 0), dict(sorted(rejected.items()))
        )
    if processing.records == "objects":
        assert processing.feature_names is not None
        present = set(table.column_names)
        features: list[pa.Array] = []
        keys: list[str] = []
        misfits: dict[int, tuple[str, int]] = {}  # row -> (why, feature position)
        widths = processing.feature_widths or (1,) * len(processing.feature_names)
        for name, width in zip(processing.feature_names, widths, strict=True):
            column = table.column(name).combine_chunks() if name in present else None
            if column is not None and pa.types.is_list(column.type):
                # An array of features under one key ($.features): one column each.
                # An array of another length counts as missing values (a bad row).
                lengths = pc.list_value_length(column)
                fits = pc.fill_null(pc.equal(lengths, width), False)
                for row in np.flatnonzero(~fits.to_numpy(zero_copy_only=False)):
                    found = lengths[int(row)].as_py()
                    held = "no array" if found is None else f"{found} values"
                    misfits.setdefault(
                        int(row), (f"key {name!r} holds {held}; expected {width}", len(features))
                    )
                blank = pa.scalar([None] * width, column.type)
                column = pc.if_else(fits, column, blank)
                for i in range(width):
                    features.append(as_text(pc.list_element(column, i)))
                    keys.append(f"{name}[{i}]")
            elif column is None:
                features.append(pa.array([""] * table.num_rows, pa.string()))
                keys.append(name)
            else:
                features.append(as_text(column))
                keys.append(name)
        labels: list[str] | None = keys
        # A CSV output of objects has a column per key of the first record.
        columns = [
            as_text(table.column(name))
            if name in present
            else pa.array([""] * table.num_rows, pa.string())
            for name in processing.input_names()
        ]
    else:
        columns = [as_text(table.column(i)) for i in range(table.num_columns)]
        features = [columns[i] for i in processing.features]
        labels = None
        misfits = {}
    features = _without_separators(features, labels, misfits)
    values, bad = _features(features, uri)
    for position, problem in bad.items():
        where = int(candidates[position])
        column = problem.column
        reason = problem.reason
        if position in misfits:
            reason, feature = misfits[position]
            column = feature + 1
        elif labels is not None and column is not None:
            if reason.startswith("empty cell"):
                reason = f"key {labels[column - 1]!r} is missing or null; a number is required"
            else:
                reason = f"key {labels[column - 1]!r}: {reason}"
        if column is not None and processing.records != "objects":
            column = processing.features[column - 1] + 1  # the file's own column
        rejected[where] = InputError(uri, reason, line=where + 1, column=column)
    keep = np.setdiff1d(np.arange(len(candidates)), np.fromiter(bad, dtype=np.int64))
    good = candidates[keep]
    take = pa.array(keep)
    return Records(
        rows=rows,
        values=values,
        good=good,
        columns=[c.take(take) for c in columns],
        lines=subset.take(take),
        rejected=dict(sorted(rejected.items())),
    )


def _without_separators(
    features: list[pa.Array], labels: list[str] | None, misfits: dict[int, tuple[str, int]]
) -> list[pa.Array]:
    """The feature cells with any that hold a comma, quote or line end (a quoted CSV
    cell, a JSON array or object's text) blanked and recorded in ``misfits``: no
    number holds one, and joined as CSV text they would shift the row's cells."""
    cleaned = []
    for position, column in enumerate(features):
        unsafe = pc.fill_null(pc.match_substring_regex(column, r'[,"\r\n]'), False)
        if not pc.any(unsafe).as_py():
            cleaned.append(column)
            continue
        for row in np.flatnonzero(unsafe.to_numpy(zero_copy_only=False)):
            cell = column[int(row)].as_py()
            why = f"{shorten(cell)!r} is not a number"
            if labels is not None:
                why = f"key {labels[position]!r}: {why}"
            misfits.setdefault(int(row), (why, position))
        cleaned.append(pc.if_else(unsafe, pa.scalar("", column.type), column))
    return cleaned


def _features(features: list[pa.Array], uri: str) -> tuple[np.ndarray, dict[int, InputError]]:
    """The feature columns parsed by the one grammar: (good values, position -> problem)."""
    rows = len(features[0]) if features else 0
    if not rows:
        return np.empty((0, len(features)), dtype=np.float32), {}
    text = pc.binary_join_element_wise(*features, ",")
    parsed = parse_rows(_joined_lines(text), columns=len(features), uri=uri)
    return parsed.values, dict(parsed.rejected)
