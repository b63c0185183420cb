"""One parse of a chunk's CSV bytes into float32 rows, on the way to the model.

The vectorised path (a byte-class check in numpy, then pyarrow's multi-threaded
CSV reader) is only an accelerator: it accepts a chunk only when every byte is
one the grammar in ``shared/rows.py`` allows and every value came out finite and
within float32's range. Anything else goes to that module's line-by-line checks,
which decide, and name the line and column of every bad cell. So there is one
grammar, whichever path a chunk takes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.errors import InputError
from shared.rows import FLOAT32_MAX, find_problems, parse_row, split_lines

# Bytes a good chunk can hold; anything else (letters but e/E, "_", non-ASCII,
# NUL, a bare "\r" ...) sends the chunk to the exact checks.
_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[np.frombuffer(b'0123456789+-.eE, \t\r\n"', dtype=np.uint8)] = True
_QUOTE, _COMMA, _CR, _LF = ord('"'), ord(","), ord("\r"), ord("\n")
_BLANKS = np.frombuffer(b" \t", dtype=np.uint8)
_CELL_ENDS = np.frombuffer(b",\r\n", dtype=np.uint8)


@dataclass(frozen=True)
class ParsedRows:
    """A chunk's rows: the good ones as float32, and where the bad ones were."""

    rows: int  # lines in the chunk, good and bad
    values: np.ndarray  # (good rows, columns) float32, in input order
    rejected: dict[int, InputError] = field(default_factory=dict)  # row index -> problem


def _bytes_allowed(data: np.ndarray) -> bool:
    if not _ALLOWED[data].all():
        return False
    carriage_returns = np.flatnonzero(data == _CR)
    if carriage_returns.size and (
        carriage_returns[-1] + 1 >= data.size or (data[carriage_returns + 1] != _LF).any()
    ):
        return False  # pyarrow would take a bare "\r" as a line end
    quotes = np.flatnonzero(data == _QUOTE)
    if quotes.size:
        # A quote opens a cell (after "," or a line start) or closes it, and after
        # a closing quote only blanks may come before the cell ends: pyarrow would
        # read '"1"2' as 12 and '"" 5' as 5.
        before = np.where(quotes > 0, data[np.maximum(quotes - 1, 0)], _COMMA)
        closing = quotes[~np.isin(before, (_COMMA, _LF))]
        if closing.size:
            solid = np.flatnonzero(~np.isin(data, _BLANKS))
            following = np.searchsorted(solid, closing + 1)
            inside = following < solid.size
            after = data[solid[following[inside]]]
            if not np.isin(after, _CELL_ENDS).all():
                return False
    return True


def fast_parse(data: bytes, columns: int) -> np.ndarray | None:
    """``data`` as (rows, columns) float32, or None when the exact checks must decide.

    ``data`` holds whole lines; the last one may lack its ``\\n``.
    """
    if not data:
        return None
    view = np.frombuffer(data, dtype=np.uint8)
    if not _bytes_allowed(view):
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.float64() for i in range(columns)},
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_columns != columns or table.num_rows != data.count(b"\n"):
        return None
    values = np.empty((table.num_rows, columns), dtype=np.float64)
    for index, column in enumerate(table.itercolumns()):
        values[:, index] = column.to_numpy()
    magnitude = np.abs(values)
    # NaN fails the comparison too, so this is also the finiteness check.
    if not (magnitude <= FLOAT32_MAX).all():
        return None
    return values.astype(np.float32)


def _long_lines(data: bytes, limit: int) -> list[int]:
    """Indexes of the lines of ``data`` longer than ``limit`` bytes (without "\\n")."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _LF)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(data)]))
    lengths = ends - starts
    if data.endswith(b"\n"):
        lengths = lengths[:-1]  # nothing after the last newline
    return [int(index) for index in np.flatnonzero(lengths > limit)]


def parse_rows(
    data: bytes,
    *,
    columns: int,
    uri: str,
    first_line: int = 1,
    max_line_bytes: int | None = None,
) -> ParsedRows:
    """All rows of ``data``: values of the good ones, and every bad one with its position.

    ``first_line`` numbers the first line of ``data``; callers that do not know
    it yet pass 1 and shift the positions later (``shift_lines``).
    """
    too_long = _long_lines(data, max_line_bytes) if max_line_bytes else []
    if not too_long:
        values = fast_parse(data, columns)
        if values is not None:
            return ParsedRows(rows=len(values), values=values)
    lines = split_lines(data)
    problems = dict(find_problems(data, first_line=first_line, columns=columns, uri=uri))
    for index in too_long:
        problems[index] = InputError(
            uri,
            f"the line is longer than the {max_line_bytes}-byte limit (BYOM_MAX_LINE_BYTES)",
            line=first_line + index,
        )
    rejected = dict(sorted(problems.items()))
    good = [line for index, line in enumerate(lines) if index not in rejected]
    # The good lines may still be out of the fast path's reach (spaces after a
    # quote, say): the exact parser reads them then.
    joined = b"\n".join(good)
    parsed = fast_parse(joined, columns) if good else None
    if parsed is None:
        parsed = np.array([parse_row(line) for line in good], dtype=np.float32).reshape(
            len(good), columns
        )
    return ParsedRows(rows=len(lines), values=parsed, rejected=rejected)


def shift_lines(rejected: dict[int, InputError], by: int) -> dict[int, InputError]:
    """The same problems, their line numbers moved ``by`` lines further into the file."""
    return {
        index: InputError(
            problem.uri,
            problem.reason,
            line=None if problem.line is None else problem.line + by,
            column=problem.column,
        )
        for index, problem in rejected.items()
    }
