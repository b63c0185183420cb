"""Row-level checks of numeric CSV text, with file/line/column in every error.

These run in Python, line by line, so they are used only where the data is small
or already known to be bad: the head of a file at ingest, and a chunk that the
vectorised parser rejected, to say exactly where and what the problem is.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator

from shared.errors import InputError


def _cells(line: str) -> list[str] | None:
    """The line's cells, or None when a quoted field is left open (it spans lines)."""
    if '"' not in line:
        return [cell.strip() for cell in line.split(",")]
    if line.count('"') % 2:
        return None
    return [cell.strip() for cell in next(csv.reader([line], skipinitialspace=True))]


def looks_like_header(line: bytes) -> bool:
    """A first line is a header when none of its cells is a number."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return False
    cells = _cells(text)
    return bool(cells) and all(cell and not _is_number(cell) for cell in cells or [])


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def line_problem(raw: bytes, *, line: int, columns: int, uri: str) -> InputError | None:
    """What is wrong with one line (without its newline), or None if it is a good row."""
    try:
        text = raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        column = raw[: exc.start].count(b",") + 1
        return InputError(uri, "is not UTF-8 text", line=line, column=column)
    if not text.strip():
        return InputError(uri, "empty line; every line must be a row of features", line=line)
    if "\x00" in text:
        return InputError(uri, "contains NUL bytes; is this a CSV file?", line=line)
    cells = _cells(text)
    if cells is None:
        return InputError(
            uri, "a quoted field runs past the end of the line; fields may not contain newlines",
            line=line, column=text[: text.rfind('"')].count(",") + 1,
        )  # fmt: skip
    if len(cells) != columns:
        return InputError(
            uri,
            f"expected {columns} columns, found {len(cells)}",
            line=line,
            column=min(len(cells), columns) + 1,
        )
    for index, cell in enumerate(cells, start=1):
        if not cell:
            return InputError(uri, "empty cell; a number is required", line=line, column=index)
        try:
            value = float(cell)
        except ValueError:
            return InputError(uri, f"{_shorten(cell)!r} is not a number", line=line, column=index)
        if not math.isfinite(value):
            return InputError(
                uri, f"{_shorten(cell)!r} is not a finite number", line=line, column=index
            )
    return None


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def find_problems(
    data: bytes, *, first_line: int, columns: int, uri: str
) -> Iterator[tuple[int, InputError]]:
    """Every bad row of ``data``: (index of the row within ``data``, what is wrong)."""
    for offset, raw in enumerate(split_lines(data)):
        problem = line_problem(raw, line=first_line + offset, columns=columns, uri=uri)
        if problem is not None:
            yield offset, problem


def check_rows(data: bytes, *, first_line: int, columns: int, uri: str) -> int:
    """Raise ``InputError`` at the first bad row of ``data``; return the row count.

    ``first_line`` is the 1-based line number of the first line of ``data`` in
    the uploaded file.
    """
    for _, problem in find_problems(data, first_line=first_line, columns=columns, uri=uri):
        raise problem
    return len(split_lines(data))


def _shorten(cell: str, limit: int = 40) -> str:
    return cell if len(cell) <= limit else cell[:limit] + "..."
