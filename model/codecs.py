"""Request and answer bodies: the media types the model server reads and writes.

One module for both ways a package is served, over the same three types
(`text/csv`, `application/json`, `application/x-npy`), neither of which ever
unpickles, plus `text/libsvm` where a container profile reads it
(model/server/containers.py: SageMaker's XGBoost container):

- **Rows for a flavor** (`read_rows`, `write_answer`): strict. A body is rows of
  float32 features of the model's width; the first bad line, cell or instance is
  named in a `BadRequest`. Answers are one prediction per row: CSV lines, `.npy`,
  or `{"predictions": [...]}`. The answer has the type Accept asks for, else the
  request's (`answer_type`).
- **The SageMaker inference toolkit's defaults** (`decode`, `encode`), for a
  script without its own `input_fn` or `output_fn` (model/inference_script.py):
  what the toolkit's `decoder.decode` and `encoder.encode` do, so a script behaves
  as it does on SageMaker's own containers.

A type that cannot be read is `UnsupportedFormat` (415), an Accept that cannot be
answered `NotAcceptable` (406): both are `BadRequest`s carrying their status.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from model.flavors.base import BadRequest, first_line
from model.libsvm import parse_libsvm

CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"
LIBSVM = "text/libsvm"
# The names SageMaker's XGBoost container reads as libsvm (its data_utils).
LIBSVM_TYPES = (LIBSVM, "text/x-libsvm", "libsvm")
TYPES = (CSV, JSON, NPY)
# Accept values that take whatever type the request has.
WILDCARDS = ("*/*", "text/*", "application/*", "")
# The largest finite float32: models see float32, so larger values are refused.
FLOAT32_MAX = float(np.finfo(np.float32).max)


class UnsupportedFormat(BadRequest):
    """The body's type cannot be read (no input_fn, for an inference script)."""

    status = 415


class NotAcceptable(BadRequest):
    """No type the caller accepts can be written (no output_fn, for a script)."""

    status = 406


def media_type(header: str) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return header.split(";", 1)[0].strip().lower()


def accepted(accept: str) -> Iterator[str]:
    """The media types of an Accept header, in the order given."""
    for part in accept.split(","):
        yield media_type(part)


# --- rows for a flavor ------------------------------------------------------------


def parse_csv(body: bytes, feature_count: int | None) -> np.ndarray:
    """Rows of float32 features, one per line; `BadRequest` names the first bad line."""
    if not body.strip():
        raise BadRequest("the request body is empty; send one row of features per line")
    data = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    lines = len(newlines) + (0 if body.endswith(b"\n") else 1)
    # Commas per line, counted without splitting: the line of each comma is the
    # number of newlines before it.
    commas = np.bincount(
        np.searchsorted(newlines, np.flatnonzero(data == ord(","))), minlength=lines
    )[:lines]
    columns = feature_count if feature_count is not None else int(commas[0]) + 1
    if np.all(commas == columns - 1):
        with contextlib.suppress(ValueError, pd.errors.ParserError):
            frame = pd.read_csv(
                io.BytesIO(body), header=None, dtype=np.float64, engine="c", na_filter=False
            )
            wide = frame.to_numpy()
            # Checked before narrowing: 1e39 is a float64 but would be float32's inf.
            if wide.shape == (lines, columns) and (np.abs(wide) <= FLOAT32_MAX).all():
                return wide.astype(np.float32)
    raise BadRequest(_csv_problem(body, columns))


def _csv_problem(body: bytes, columns: int) -> str:
    """Where the body first fails to be rows of `columns` numbers (the slow path)."""
    text = body.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    for number, line in enumerate(text.split("\n"), start=1):
        cells = line.rstrip("\r").split(",")
        if not line.strip():
            return f"line {number} is empty; every line must be a row of features"
        if len(cells) != columns:
            return f"line {number}: expected {columns} columns, found {len(cells)}"
        for column, cell in enumerate(cells, start=1):
            value = cell.strip().strip('"')
            try:
                number_value = float(value)
            except ValueError:
                shown = value if len(value) <= 40 else value[:37] + "..."
                return f"line {number}, column {column}: {shown!r} is not a number"
            if not math.isfinite(number_value):
                return f"line {number}, column {column}: {value!r} is not a finite number"
            if abs(number_value) > FLOAT32_MAX:
                return f"line {number}, column {column}: {value!r} is beyond the float32 range"
    return "the body is not CSV rows of numbers"


def parse_json(body: bytes, feature_count: int | None) -> np.ndarray:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list):
        raise BadRequest('expected {"instances": [[...], ...]} or a list of rows')
    if not instances:
        raise BadRequest("no instances to score")
    try:
        rows = np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"instances must be rows of numbers of equal length: {exc}") from exc
    if rows.ndim != 2:
        raise BadRequest("instances must be a list of rows, each a list of numbers")
    if feature_count is not None and rows.shape[1] != feature_count:
        raise BadRequest(f"expected {feature_count} features per row, got {rows.shape[1]}")
    if not np.isfinite(rows).all():
        row = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise BadRequest(f"instance {row} holds a value that is not a finite number")
    return rows


def parse_npy(body: bytes, feature_count: int | None) -> np.ndarray:
    """A 2-D numeric ``.npy`` array (SageMaker's ``application/x-npy``); never unpickles."""
    try:
        rows: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadRequest(f"the body is not a .npy array of numbers: {exc}") from exc
    if not isinstance(rows, np.ndarray) or rows.dtype.kind not in "fiub":
        raise BadRequest("the .npy body must hold a numeric array")
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or not rows.size:
        raise BadRequest(f"expected rows of features, got an array of shape {rows.shape}")
    if feature_count is not None and rows.shape[1] != feature_count:
        raise BadRequest(f"expected {feature_count} features per row, got {rows.shape[1]}")
    features = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise BadRequest(f"row {row} holds a value that is not a finite float32")
    return features


def format_csv(predictions: np.ndarray) -> bytes:
    """One line per row, each value in its shortest round-trip text.

    pyarrow's CSV writer formats in C++, with no Python object per row: about
    10x faster than numpy's ``astype(str)`` for a million probabilities.
    """
    columns = predictions.reshape(len(predictions), -1)
    table = pa.table({f"c{i}": columns[:, i] for i in range(columns.shape[1])})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()


def format_npy(predictions: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, predictions, allow_pickle=False)
    return buffer.getvalue()


def format_json(predictions: np.ndarray) -> bytes:
    return json.dumps({"predictions": predictions.tolist()}).encode()


Decoder = Callable[[bytes, "int | None"], np.ndarray]
DECODERS: dict[str, Decoder] = {CSV: parse_csv, JSON: parse_json, NPY: parse_npy}
# Read only where a container profile says so (model/server/containers.py).
LIBSVM_DECODERS: dict[str, Decoder] = dict.fromkeys(LIBSVM_TYPES, parse_libsvm)
ENCODERS: dict[str, Callable[[np.ndarray], bytes]] = {
    CSV: format_csv,
    JSON: format_json,
    NPY: format_npy,
}


def answer_type(accept: str | None, content_type: str) -> str:
    """The type to answer in: the first Accept names that can be written, the
    request's own for a wildcard or no Accept."""
    if not accept:
        return content_type
    for wanted in accepted(accept):
        if wanted in TYPES:
            return wanted
        if wanted in WILDCARDS:
            return content_type
    raise NotAcceptable(f"cannot answer with {accept!r}; accept {CSV}, {JSON} or {NPY}")


def read_rows(
    body: bytes,
    content_type: str,
    feature_count: int | None,
    decoders: Mapping[str, Decoder] = DECODERS,
) -> np.ndarray:
    """The body as a 2-D float32 array of `feature_count` columns (when known)."""
    decoder = decoders.get(content_type)
    if decoder is None:
        readable = ", ".join(sorted(decoders))
        raise UnsupportedFormat(f"cannot read {content_type!r}; send one of {readable}")
    return decoder(body, feature_count)


def write_answer(predictions: np.ndarray, answer: str) -> bytes:
    """`predictions` in the type `answer_type` chose."""
    return ENCODERS[answer](predictions)


# --- the SageMaker inference toolkit's default decoder and encoder -----------------


def decode(data: str | bytes, content_type: str) -> np.ndarray:
    """`data` of `content_type` as a numpy array, as the toolkit's `decoder.decode`."""
    try:
        if content_type == CSV:
            text = data if isinstance(data, str) else data.decode("utf-8")
            return np.genfromtxt(io.StringIO(text), delimiter=",")
        if content_type == JSON:
            return np.array(json.loads(data))
        if content_type == NPY:
            raw = data.encode() if isinstance(data, str) else data
            # The toolkit unpickles here; byom reads plain arrays only.
            array: np.ndarray = np.load(io.BytesIO(raw), allow_pickle=False)
            return array
    except (ValueError, EOFError, OSError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not {content_type}: {first_line(exc)}") from exc
    raise UnsupportedFormat(
        f"cannot read {content_type!r} without an input_fn; send {CSV}, {JSON} or {NPY}, "
        "or define input_fn in the inference script"
    )


def encode(prediction: Any, content_type: str) -> bytes:
    """`prediction` written as `content_type`, as the toolkit's `encoder.encode`."""
    if content_type == JSON:

        def default(value: Any) -> Any:
            if hasattr(value, "tolist"):
                return value.tolist()
            raise TypeError(f"{type(value).__name__} is not JSON serializable")

        return json.dumps(prediction, default=default).encode()
    if content_type == CSV:
        stream = io.StringIO()
        np.savetxt(stream, np.asarray(prediction), delimiter=",", fmt="%s")
        return stream.getvalue().encode()
    if content_type == NPY:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(prediction), allow_pickle=False)
        return buffer.getvalue()
    raise NotAcceptable(f"cannot write {content_type!r}; accept {CSV}, {JSON} or {NPY}")
