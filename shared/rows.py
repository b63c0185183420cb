"""byom's one number grammar, and row checks that name the line and column.

Every part of the pipeline accepts exactly this, and nothing else (docs/bad-input.md
states it for users):

- a row is one line of exactly ``columns`` cells separated by ``,``; lines end in
  ``\\n`` or ``\\r\\n`` (the last line may have no ending); no empty lines;
- a cell is a decimal number in ASCII, ``[+-]digits[.digits][(e|E)[+-]digits]``
  (``1``, ``-0.5``, ``.5``, ``5.``, ``1e-3``, ``+2E+05``), optionally with spaces
  or tabs around it, optionally inside double quotes (``"1.5"``, the quote being
  the cell's first character);
- its value is finite and within float32's range (|x| <= 3.4028235e38), because
  the model sees float32: ``1e39`` would become infinity.

So ``nan``, ``inf``, ``1_000``, ``0x10``, Unicode digits, non-breaking spaces,
a space before an opening quote and a carriage return inside a line are all
rejected, each with its line and column.

This module is pure Python: it runs in the Lambda functions (the head check at
ingest, the scheduler's small-file path) and, in the workers, only on rows the
vectorised parser declined, to say exactly where and what the problem is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

from shared.errors import InputError

# The largest finite float32.
FLOAT32_MAX = 3.4028234663852886e38

# One way to match each number: [0-9]+\.?[0-9]* could split a run of digits at
# every place, so a long run before a bad character took quadratic time.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_BLANK = r"[ \t]*"
_CELL = rf"(?:{_BLANK}{_NUMBER}{_BLANK}|\"{_BLANK}{_NUMBER}{_BLANK}\"{_BLANK})"
_NUMBER_CELL = re.compile(_CELL, re.ASCII)
_OPEN_QUOTE = "a quoted field runs past the end of the line; fields may not contain newlines"


@cache
def _row_pattern(columns: int) -> re.Pattern[str]:
    """A whole good row in one match, so good lines cost one regex call, not one per cell."""
    return re.compile(rf"{_CELL}(?:,{_CELL}){{{columns - 1}}}", re.ASCII)


def split_cells(text: str) -> list[str] | str:
    """The cells of one line, quotes kept; or a message when a quote is left open.

    A quote opens a field only as a cell's first character and closes at the next
    quote; commas inside quotes do not split. (Quotes elsewhere are ordinary
    characters, and the number grammar rejects them.)
    """
    cells: list[str] = []
    start, size = 0, len(text)
    while True:
        if text.startswith('"', start):
            close = text.find('"', start + 1)
            if close < 0:
                return _OPEN_QUOTE
            comma = text.find(",", close)
        else:
            comma = text.find(",", start)
        if comma < 0:
            cells.append(text[start:size])
            return cells
        cells.append(text[start:comma])
        start = comma + 1


def header_names(line: bytes) -> list[str] | None:
    """The first line's names when it is a header (no cell is a number), else None."""
    try:
        text = line.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        return None
    cells = split_cells(text)
    if isinstance(cells, str) or not text.strip():
        return None
    names = [cell.strip().strip('"').strip() for cell in cells]
    pairs = zip(names, cells, strict=True)
    if any(not name or _NUMBER_CELL.fullmatch(cell) for name, cell in pairs):
        return None
    return names


def cell_problem(cell: str) -> str | None:
    """Why one cell is not a number byom accepts, or None when it is one."""
    if not cell.strip(" \t").strip('"').strip(" \t"):
        return "empty cell; a number is required"
    if not _NUMBER_CELL.fullmatch(cell):
        if cell.strip(' \t"').lstrip("+-").lower() in ("nan", "inf", "infinity"):
            return f"{shorten(cell.strip())!r} is not a finite number"
        bad = next((c for c in cell if not c.isascii() or not c.isprintable()), None)
        if bad == "\r":
            return "a carriage return inside the line; lines end in \\n or \\r\\n"
        if bad is not None:
            return f"{shorten(cell)!r} is not a number (it holds the character U+{ord(bad):04X})"
        return f"{shorten(cell)!r} is not a number"
    if abs(float(cell.strip(' \t"'))) > FLOAT32_MAX:
        return f"{shorten(cell.strip())!r} is beyond the float32 range (|x| <= 3.4e38)"
    return None


def line_problem(raw: bytes, *, line: int, columns: int, uri: str) -> InputError | None:
    """What is wrong with one line (without its ``\\n``), or None if it is a good row."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = raw[: exc.start].count(b",") + 1
        return InputError(uri, "is not UTF-8 text", line=line, column=column)
    text = text.removesuffix("\r")
    if _row_pattern(columns).fullmatch(text) and _in_range(text):
        return None
    if not text.strip():
        return InputError(uri, "empty line; every line must be a row of features", line=line)
    if "\x00" in text:
        return InputError(uri, "contains NUL bytes; is this a CSV file?", line=line)
    if "\r" in text:
        return InputError(
            uri,
            "a carriage return inside the line; lines end in \\n or \\r\\n",
            line=line,
            column=text[: text.index("\r")].count(",") + 1,
        )
    cells = split_cells(text)
    if isinstance(cells, str):
        return InputError(uri, cells, line=line, column=text[: text.rfind('"')].count(",") + 1)
    if len(cells) != columns:
        return InputError(
            uri,
            f"expected {columns} columns, found {len(cells)}",
            line=line,
            column=min(len(cells), columns) + 1,
        )
    for index, cell in enumerate(cells, start=1):
        problem = cell_problem(cell)
        if problem is not None:
            return InputError(uri, problem, line=line, column=index)
    return None


def _in_range(text: str) -> bool:
    # Only long cells can overflow float32 (|x| > 3.4e38 needs 39 digits or an
    # exponent), so most rows skip the float() calls.
    if "e" not in text and "E" not in text and len(text) < 39:
        return True
    return all(abs(float(cell.strip(' \t"'))) <= FLOAT32_MAX for cell in text.split(","))


def parse_row(raw: bytes) -> list[float]:
    """The values of a line that ``line_problem`` accepted."""
    text = raw.decode("ascii").removesuffix("\r")
    return [float(cell.strip(' \t"')) for cell in split_cells(text)]


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


def shorten(cell: str, limit: int = 40) -> str:
    return cell if len(cell) <= limit else cell[:limit] + "..."
