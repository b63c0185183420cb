"""Chunks of a CSV object: planned by arithmetic, aligned to lines by their readers.

Planning costs no reads at all: chunk ``i`` is the byte range
``[data_start + i * chunk_bytes, data_start + (i + 1) * chunk_bytes)``, cut
anywhere. Each reader then aligns itself the way Hadoop's line record reader
does, so that every line belongs to exactly one chunk:

    a chunk owns every line whose first byte lies inside its range.

A line starts at ``data_start`` or just after a ``\\n``. So a reader skips the
partial line it starts in (unless it starts at ``data_start``) and reads past its
range's end until the line it is in has ended. Neighbours agree without talking:
a chunk ends at the first ``\\n`` at or after ``end - 1``, and the next one starts
just after that same ``\\n``. A boundary inside a ``\\r\\n`` pair, inside a quoted
field, on the last byte or in a file without a final newline needs no special
case. (Fields cannot contain newlines: the number grammar rejects them.)
"""

from __future__ import annotations

from collections.abc import Callable

from shared.errors import InputError

# Reads bytes [start, end) of the object; may return fewer only at the end of it.
ReadRange = Callable[[int, int], bytes]

BOM = b"\xef\xbb\xbf"
_WINDOW = 64 * 1024


def find_line_end(
    read: ReadRange,
    pos: int,
    size: int,
    *,
    max_line_bytes: int,
    uri: str,
    line: int | None = None,
) -> int:
    """Offset just past the first ``\\n`` at or after ``pos`` (or ``size`` if none).

    ``line``, when the caller knows it, is the number of the line being scanned.
    """
    scanned = 0
    while pos < size:
        window = read(pos, min(pos + _WINDOW, size))
        if not window:
            break
        newline = window.find(b"\n")
        if newline >= 0:
            return pos + newline + 1
        pos += len(window)
        scanned += len(window)
        if scanned > max_line_bytes:
            where = "the line" if line is not None else f"a line near byte {pos - scanned}"
            raise InputError(
                uri,
                f"{where} is longer than the {max_line_bytes}-byte limit (BYOM_MAX_LINE_BYTES)",
                line=line,
            )
    return size


def plan_ranges(data_start: int, size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """``[data_start, size)`` cut into ranges of ``chunk_bytes`` (the last one shorter)."""
    return [
        (start, min(start + chunk_bytes, size)) for start in range(data_start, size, chunk_bytes)
    ]


def read_start(start: int, data_start: int) -> int:
    """Where a reader of the range starting at ``start`` begins reading.

    One byte early, so that a range that starts exactly on a line start sees the
    ``\\n`` before it and keeps that line.
    """
    return start if start <= data_start else start - 1


def owned_lines(
    buffer: bytes, buffer_start: int, start: int, end: int, *, data_start: int, size: int
) -> tuple[int, int] | None:
    """The byte range ``[first, last)`` of the lines the chunk ``[start, end)`` owns.

    ``buffer`` holds the object's bytes from ``buffer_start``, which must be
    ``read_start(start, data_start)``. Returns None when the buffer ends before
    the answer is known (the reader reads on and asks again); ``first == last``
    when a line longer than the chunk started before it, so it owns no line.
    """
    buffer_end = buffer_start + len(buffer)
    if start <= data_start:
        first = data_start
    else:
        newline = buffer.find(b"\n")
        if newline < 0:
            return (end, end) if buffer_end >= end else None
        first = buffer_start + newline + 1
    if first >= end:
        return first, first
    newline = buffer.find(b"\n", max(end - 1, first) - buffer_start)
    if newline >= 0:
        return first, buffer_start + newline + 1
    if buffer_end >= size:
        return first, size
    return None


def count_lines(data: bytes) -> int:
    """Number of records in ``data``: newlines, plus one for a last line without one."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def split_records(data: bytes, max_bytes: int, max_rows: int | None = None) -> list[bytes]:
    """Split whole lines of ``data`` into pieces of at most ``max_bytes`` where possible,
    and of at most ``max_rows`` lines.

    A single line longer than ``max_bytes`` becomes a piece of its own; the caller
    caps line length long before that matters.
    """
    if max_rows is not None:
        return [
            piece
            for block in _split_rows(data, max_rows)
            for piece in split_records(block, max_bytes)
        ]
    pieces: list[bytes] = []
    start, size = 0, len(data)
    while start < size:
        end = start + max_bytes
        if end >= size:
            pieces.append(data[start:])
            break
        cut = data.rfind(b"\n", start, end)
        if cut < 0:
            cut = data.find(b"\n", end)
            if cut < 0:
                pieces.append(data[start:])
                break
        pieces.append(data[start : cut + 1])
        start = cut + 1
    return pieces


def _split_rows(data: bytes, max_rows: int) -> list[bytes]:
    """Pieces of ``data`` of ``max_rows`` whole lines each (the last one fewer)."""
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        end = start
        for _ in range(max_rows):
            newline = data.find(b"\n", end)
            if newline < 0:
                end = len(data)
                break
            end = newline + 1
        pieces.append(data[start:end])
        start = end
    return pieces
