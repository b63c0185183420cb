from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.csvchunks import count_lines, find_line_end, plan_ranges, split_records
from shared.errors import InputError


def reader(data: bytes):
    calls: list[tuple[int, int]] = []

    def read(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    read.calls = calls  # type: ignore[attr-defined]
    return read


def plan(data: bytes, chunk_bytes: int, data_start: int = 0, max_line: int = 1 << 20):
    return plan_ranges(
        reader(data),
        len(data),
        data_start=data_start,
        chunk_bytes=chunk_bytes,
        max_line_bytes=max_line,
        uri="s3://b/input/x.csv",
    )


def test_chunks_end_on_line_boundaries():
    data = b"1,2\n3,4\n5,6\n7,8\n"
    ranges = plan(data, chunk_bytes=5)
    assert ranges == [(0, 8), (8, 16)]
    assert [data[s:e] for s, e in ranges] == [b"1,2\n3,4\n", b"5,6\n7,8\n"]


def test_boundary_exactly_after_newline_is_kept():
    data = b"1,2\n3,4\n"
    assert plan(data, chunk_bytes=4) == [(0, 4), (4, 8)]


def test_crlf_lines_stay_whole():
    data = b"1,2\r\n3,4\r\n5,6\r\n"
    ranges = plan(data, chunk_bytes=6)
    pieces = [data[s:e] for s, e in ranges]
    assert b"".join(pieces) == data
    assert all(p.endswith(b"\r\n") for p in pieces)


def test_no_trailing_newline():
    data = b"1,2\n3,4\n5,6"
    ranges = plan(data, chunk_bytes=5)
    assert [data[s:e] for s, e in ranges] == [b"1,2\n3,4\n", b"5,6"]
    assert sum(count_lines(data[s:e]) for s, e in ranges) == 3


def test_header_is_skipped_by_data_start():
    data = b"a,b\n1,2\n3,4\n"
    ranges = plan(data, chunk_bytes=100, data_start=4)
    assert ranges == [(4, 12)]


def test_planning_reads_only_windows_not_the_file():
    line = b"0.123456789," * 29 + b"0.5\n"
    data = line * 20_000  # ~7.4 MB
    read = reader(data)
    ranges = plan_ranges(
        read, len(data), data_start=0, chunk_bytes=1 << 20, max_line_bytes=1 << 20, uri="u"
    )
    assert len(ranges) == -(-len(data) // (1 << 20))
    fetched = sum(end - start for start, end in read.calls)  # type: ignore[attr-defined]
    assert fetched <= len(ranges) * 64 * 1024


def test_overlong_line_is_an_input_error():
    data = b"1" * 300_000 + b"\n"
    with pytest.raises(InputError, match="longer than"):
        find_line_end(reader(data), 0, len(data), max_line_bytes=100_000, uri="s3://b/k")


def test_count_lines():
    assert count_lines(b"") == 0
    assert count_lines(b"a") == 1
    assert count_lines(b"a\n") == 1
    assert count_lines(b"a\nb") == 2
    assert count_lines(b"a\r\nb\r\n") == 2


def test_split_records_respects_the_byte_limit_on_line_boundaries():
    data = b"".join(f"{i},{i}\n".encode() for i in range(1000))
    pieces = split_records(data, 100)
    assert b"".join(pieces) == data
    assert all(len(p) <= 100 and p.endswith(b"\n") for p in pieces)


lines = st.lists(
    st.text(alphabet='0123456789.,-e\r"ab ', min_size=0, max_size=30), min_size=0, max_size=60
)


@settings(max_examples=300, deadline=None)
@given(
    lines=lines,
    trailing=st.booleans(),
    chunk_bytes=st.integers(min_value=1, max_value=200),
    data_start=st.integers(min_value=0, max_value=5),
)
def test_concatenated_chunks_give_back_every_record_in_order(
    lines, trailing, chunk_bytes, data_start
):
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    data = text.encode()
    data_start = min(data_start, len(data))
    ranges = plan(data, chunk_bytes=chunk_bytes, data_start=data_start)
    pieces = [data[s:e] for s, e in ranges]
    assert b"".join(pieces) == data[data_start:]
    # every chunk but the last ends on a newline, so no record is split
    assert all(p.endswith(b"\n") for p in pieces[:-1])
    assert all(p for p in pieces)


@settings(max_examples=200, deadline=None)
@given(lines=lines, limit=st.integers(min_value=1, max_value=120))
def test_split_records_round_trips(lines, limit):
    data = "\n".join(lines).encode()
    pieces = split_records(data, limit)
    assert b"".join(pieces) == data
    assert sum(count_lines(p) for p in pieces) == count_lines(data)
