"""`text/libsvm` request bodies, read as SageMaker's XGBoost container reads them.

One row per line: an optional label, then `index:value` pairs separated by spaces
or tabs (`1 3:0.5 7:1.25`). The XGBoost container builds a sparse matrix from
them, in which an index a row does not name is a *missing* value; here the rows
become dense float32 rows with NaN in those places, which is what XGBoost reads as
missing too, so a flavor gets the same scores.

As the container does:

- a token without a colon (the label) is ignored; here only as a line's first token;
- indices are 1-based, unless the body names index 0 anywhere, then 0-based
  (the container shifts them by one only when the smallest index is at least 1);
- "\\n" or "\\r\\n" line endings; a trailing newline ends the last row.

Stricter than the container, each refusal a `BadRequest` naming line and token:
an empty line in the middle, an index past the model's `feature_count`, an index
named twice in a row (the container would add the two values), a value that is
not a finite float32 number, anything that is not ASCII digits and numbers.
Work is bounded: the dense rows may hold at most `MAX_CELLS` values, and without
a feature count an index may be at most `MAX_COLUMNS`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from model.flavors.base import BadRequest

# At most this many dense cells (256 MiB of float32) from one body.
MAX_CELLS = 1 << 26
# The widest row when the model does not say how many features it takes.
MAX_COLUMNS = 1 << 20
FLOAT32_MAX = float(np.finfo(np.float32).max)
_INDEX = re.compile(rb"[0-9]{1,12}")
_NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


def _shown(token: bytes) -> str:
    text = token.decode("ascii", errors="replace")
    return text if len(text) <= 40 else text[:37] + "..."


def _number(token: bytes, where: str) -> float:
    if not _NUMBER.fullmatch(token):
        raise BadRequest(f"{where}: {_shown(token)!r} is not a number")
    value = float(token)
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise BadRequest(f"{where}: {_shown(token)!r} is beyond the float32 range")
    return value


def _lines(body: bytes) -> list[bytes]:
    if not body.strip():
        raise BadRequest("the request body is empty; send one libsvm row per line")
    text = body[:-1] if body.endswith(b"\n") else body
    return [line[:-1] if line.endswith(b"\r") else line for line in text.split(b"\n")]


def parse_libsvm(body: bytes, feature_count: int | None, max_cells: int = MAX_CELLS) -> np.ndarray:
    """Dense float32 rows (NaN where a row names no value), `feature_count` wide
    when the model says; `BadRequest` names the first line that cannot be read."""
    rows: list[list[tuple[int, float]]] = []
    smallest = None
    largest = -1
    for number, line in enumerate(_lines(body), start=1):
        tokens = line.split()
        if not tokens:
            raise BadRequest(f"line {number} is empty; every line must be a libsvm row")
        if b":" not in tokens[0]:
            _number(tokens[0], f"line {number}, label")  # read, and then ignored
            tokens = tokens[1:]
        pairs: list[tuple[int, float]] = []
        seen: set[int] = set()
        for token in tokens:
            where = f"line {number}, {_shown(token)!r}"
            index_text, colon, value_text = token.partition(b":")
            if not colon or not _INDEX.fullmatch(index_text):
                raise BadRequest(f"{where}: expected index:value with a whole-number index")
            index = int(index_text)
            if index in seen:
                raise BadRequest(f"{where}: index {index} is named twice in the row")
            if index > MAX_COLUMNS:
                raise BadRequest(f"{where}: index {index} is past the limit of {MAX_COLUMNS}")
            seen.add(index)
            pairs.append((index, _number(value_text, where)))
            smallest = index if smallest is None else min(smallest, index)
            largest = max(largest, index)
        rows.append(pairs)
    shift = 1 if smallest is not None and smallest >= 1 else 0
    if feature_count is None and largest < 0:
        raise BadRequest("no index:value pairs in the body, and the model does not say its width")
    width = feature_count if feature_count is not None else largest + 1 - shift
    if largest - shift >= width:
        raise BadRequest(
            f"index {largest} is past the model's {width} features "
            f"({'1' if shift else '0'}-based indices)"
        )
    if len(rows) * max(width, 1) > max_cells:
        raise BadRequest(
            f"{len(rows)} rows of {width} features is more than {max_cells} values; "
            "send fewer rows per request"
        )
    dense = np.full((len(rows), width), np.nan, dtype=np.float32)
    for row, pairs in enumerate(rows):
        for index, value in pairs:
            dense[row, index - shift] = value
    return dense
