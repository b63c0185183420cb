"""Arithmetic planning and self-aligning readers: every line read once, by one chunk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.csvchunks import (
    count_lines,
    find_line_end,
    owned_lines,
    plan_ranges,
    read_start,
    split_records,
)
from shared.errors import InputError


def reader(data: bytes):
    calls: list[tuple[int, int]] = []

    def read(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    read.calls = calls  # type: ignore[attr-defined]
    return read


def read_chunk(data: bytes, start: int, end: int, data_start: int, window: int) -> bytes:
    """What a worker reads for one chunk, with reads of ``window`` bytes at a time."""
    begin = read_start(start, data_start)
    buffer = data[begin : min(len(data), end + window)]
    while (span := owned_lines(
        buffer, begin, start, end, data_start=data_start, size=len(data)
    )) is None:  # fmt: skip
        more = begin + len(buffer)
        assert more < len(data), "asked for more past the end of the object"
        buffer += data[more : more + window]
    first, last = span
    return data[first:last]


def chunks_of(data: bytes, chunk_bytes: int, data_start: int = 0, window: int = 3) -> list[bytes]:
    return [
        read_chunk(data, start, end, data_start, window)
        for start, end in plan_ranges(data_start, len(data), chunk_bytes)
    ]


def test_planning_is_arithmetic():
    assert plan_ranges(0, 10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_ranges(3, 10, 4) == [(3, 7), (7, 10)]
    assert plan_ranges(0, 8, 4) == [(0, 4), (4, 8)]
    assert plan_ranges(5, 5, 4) == []


def test_a_chunk_owns_the_lines_that_start_in_it():
    data = b"1,2\n3,4\n5,6\n7,8\n"
    assert chunks_of(data, 5) == [b"1,2\n3,4\n", b"5,6\n", b"7,8\n", b""]


def test_a_boundary_right_after_a_newline_keeps_the_next_line_in_the_next_chunk():
    data = b"1,2\n3,4\n"
    assert chunks_of(data, 4) == [b"1,2\n", b"3,4\n"]


@pytest.mark.parametrize("chunk_bytes", range(1, 16))
def test_crlf_pairs_are_never_split(chunk_bytes):
    data = b"1,2\r\n3,4\r\n5,6\r\n"
    pieces = chunks_of(data, chunk_bytes)
    assert b"".join(pieces) == data
    assert all(p.endswith(b"\r\n") for p in pieces if p)


def test_a_boundary_inside_a_crlf_pair():
    data = b"1,2\r\n3,4\r\n"
    # chunk 0 is [0, 4): its end falls between "\r" and "\n"
    assert chunks_of(data, 4) == [b"1,2\r\n", b"3,4\r\n", b""]


def test_a_boundary_inside_a_quoted_field():
    data = b'"1",2\n"3",4\n'
    assert chunks_of(data, 8) == [b'"1",2\n"3",4\n', b""]
    assert chunks_of(data, 1)[0] == b'"1",2\n'


def test_a_boundary_on_the_last_byte():
    data = b"1,2\n3,4\n"
    assert chunks_of(data, 7) == [b"1,2\n3,4\n", b""]


def test_no_final_newline():
    data = b"1,2\n3,4\n5,6"
    pieces = chunks_of(data, 5)
    assert pieces == [b"1,2\n3,4\n", b"5,6", b""]
    assert sum(count_lines(p) for p in pieces) == 3


def test_header_and_bom_are_skipped_by_data_start():
    data = b"\xef\xbb\xbfa,b\n1,2\n3,4\n"
    data_start = 3 + 4
    assert chunks_of(data, 4, data_start=data_start) == [b"1,2\n", b"3,4\n"]
    assert chunks_of(data, 100, data_start=data_start) == [b"1,2\n3,4\n"]


def test_a_line_longer_than_the_chunk_belongs_to_the_chunk_it_starts_in():
    data = b"1," * 20 + b"1\n2,3\n"
    assert chunks_of(data, 8) == [data[:42], b"", b"", b"", b"", b"2,3\n"]


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


@settings(max_examples=400, deadline=None)
@given(
    lines=lines,
    trailing=st.booleans(),
    chunk_bytes=st.integers(min_value=1, max_value=200),
    data_start=st.integers(min_value=0, max_value=5),
    window=st.integers(min_value=1, max_value=50),
)
def test_every_line_is_read_once_in_order(lines, trailing, chunk_bytes, data_start, window):
    text = "\n".join(lines) + ("\n" if trailing and lines else "")
    data = text.encode()
    data_start = min(data_start, len(data))
    pieces = chunks_of(data, chunk_bytes, data_start, window)
    assert b"".join(pieces) == data[data_start:]
    # no line is split: every piece but the last non-empty one ends on a newline
    non_empty = [p for p in pieces if p]
    assert all(p.endswith(b"\n") for p in non_empty[:-1])


@settings(max_examples=200, deadline=None)
@given(lines=lines, limit=st.integers(min_value=1, max_value=120))
def test_split_records_round_trips(lines, limit):
    data = "\n".join(lines).encode()
    pieces = split_records(data, limit)
    assert b"".join(pieces) == data
    assert sum(count_lines(p) for p in pieces) == count_lines(data)
