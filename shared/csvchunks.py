"""Line-boundary chunking of CSV objects without reading them whole.

A chunk is a byte range ``[start, end)`` of the uploaded object that begins at the
start of a line and ends just after a ``\\n`` (or at the end of the object). The
planner finds each boundary by reading a small window around the nominal offset,
so planning a 10 GB file costs a few ranged GETs, not a download.
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


def plan_ranges(
    read: ReadRange,
    size: int,
    *,
    data_start: int,
    chunk_bytes: int,
    max_line_bytes: int,
    uri: str,
) -> list[tuple[int, int]]:
    """Split ``[data_start, size)`` into line-aligned ranges of about ``chunk_bytes``."""
    ranges: list[tuple[int, int]] = []
    start = data_start
    while start < size:
        target = start + chunk_bytes
        if target >= size:
            ranges.append((start, size))
            break
        # A boundary at ``target`` is already a line start when byte target-1 is
        # a newline, which is why the search begins one byte early.
        end = find_line_end(read, target - 1, size, max_line_bytes=max_line_bytes, uri=uri)
        ranges.append((start, end))
        start = end
    return ranges


def count_lines(data: bytes) -> int:
    """Number of records in ``data``: newlines, plus one for a last line without one."""
    if not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


def split_records(data: bytes, max_bytes: int) -> list[bytes]:
    """Split whole lines of ``data`` into pieces of at most ``max_bytes`` where possible.

    A single line longer than ``max_bytes`` becomes a piece of its own; the caller
    caps line length long before that matters.
    """
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
