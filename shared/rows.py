"""Row-level checks of numeric CSV text, with file/line/column in every error.

These run in Python, line by line, so they are used only where the data is small:
the head of a file at ingest, and a chunk that the vectorised parser rejected,
to say exactly where the problem is.
"""

from __future__ import annotations

import math

from shared.errors import InputError


def _cells(line: str) -> list[str]:
    return [cell.strip().strip('"').strip() for cell in line.split(",")]


def looks_like_header(line: bytes) -> bool:
    """A first line is a header when none of its cells is a number."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    cells = _cells(text.rstrip("\r\n"))
    return bool(cells) and all(cell and not _is_number(cell) for cell in cells)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def check_rows(data: bytes, *, first_line: int, columns: int, uri: str) -> int:
    """Raise ``InputError`` at the first bad row of ``data``; return the row count.

    ``first_line`` is the 1-based line number of the first line of ``data`` in
    the uploaded file.
    """
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for offset, raw in enumerate(lines):
        number = first_line + offset
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise InputError(
                uri, "is not UTF-8 text", line=number, column=_column_at(raw, exc.start)
            ) from None
        if not text.strip():
            raise InputError(uri, "empty line; every line must be a row of features", line=number)
        cells = _cells(text)
        if len(cells) != columns:
            raise InputError(
                uri,
                f"expected {columns} columns, found {len(cells)}",
                line=number,
                column=min(len(cells), columns) + 1,
            )
        for index, cell in enumerate(cells, start=1):
            if not cell:
                raise InputError(uri, "empty cell; a number is required", line=number, column=index)
            try:
                value = float(cell)
            except ValueError:
                raise InputError(
                    uri, f"{_shorten(cell)!r} is not a number", line=number, column=index
                ) from None
            if not math.isfinite(value):
                raise InputError(uri, f"{cell!r} is not a finite number", line=number, column=index)
    return len(lines)


def _column_at(raw: bytes, byte_offset: int) -> int:
    return raw[:byte_offset].count(b",") + 1


def _shorten(cell: str, limit: int = 40) -> str:
    return cell if len(cell) <= limit else cell[:limit] + "..."
