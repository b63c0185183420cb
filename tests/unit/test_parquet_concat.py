"""Joining Parquet parts without pyarrow: what pyarrow reads back is concat_tables."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.csvchunks import ReadRange
from shared.errors import ByomError
from shared.parquet_concat import ConcatError, joined_footer, read_part_footer
from shared.parquet_footer import MAGIC
from shared.thrift_compact import Struct, decode
from tests.unit.bounds import MIB, within_memory

SCHEMA = pa.schema([("id", pa.string()), ("x", pa.float64()), ("n", pa.int32())])


def part(table: pa.Table, row_group_size: int | None = None) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def join(parts: list[bytes]) -> bytes:
    """The parts joined as the status function joins them, byte for byte."""
    output, placed = bytearray(MAGIC), []
    for data in parts:
        start, footer = read_part_footer(reader(data), len(data))
        placed.append((footer, len(output)))
        output += data[len(MAGIC) : start]
    return bytes(output + joined_footer(placed))


def reader(data: bytes) -> ReadRange:
    return lambda start, end: data[start:end]


def table(rows: list[tuple[str | None, float | None, int | None]]) -> pa.Table:
    columns: list[tuple[object, ...]] = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return pa.Table.from_arrays(
        [pa.array(list(c), f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def test_an_empty_part_keeps_its_absent_offsets_absent() -> None:
    # pyarrow writes data_page_offset 0 ("no data page") for an empty part, and 0
    # as every column chunk's file_offset; moving those by the part's position
    # pointed them into the part before.
    first = table([("a", 1.0, 1), ("b", 2.0, 2)])
    last = table([("c", 3.0, 3)])
    joined = join([part(first), part(table([])), part(last)])
    _, footer = read_part_footer(lambda s, e: joined[s:e], len(joined))
    empty_group = footer[4][1][1][1]
    for column in empty_group[1][1][1]:
        assert column[2][1] == 0 and column[3][1][9][1] == 0
    back = pq.read_table(io.BytesIO(joined))
    assert back.equals(pa.concat_tables([first, last]))
    assert pq.ParquetFile(io.BytesIO(joined)).metadata.num_row_groups == 3


rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.text(max_size=8)),
        st.one_of(st.none(), st.floats(allow_nan=False)),
        st.one_of(st.none(), st.integers(-(1 << 31), (1 << 31) - 1)),
    ),
    max_size=30,
)


@given(st.lists(rows, min_size=1, max_size=5), st.integers(1, 12))
def test_joined_parts_read_back_as_concat_tables(
    parts: list[list[tuple[str | None, float | None, int | None]]], row_group_size: int
) -> None:
    tables = [table(p) for p in parts]
    joined = join([part(t, row_group_size) for t in tables])
    back = pq.read_table(io.BytesIO(joined))
    assert back.equals(pa.concat_tables(tables))


def test_parts_that_cannot_be_joined_say_why() -> None:
    data = part(table([("a", 1.0, 1)]))
    other = part(pa.table({"y": [1.0]}))
    with pytest.raises(ConcatError, match="schemas differ"):
        join([data, other])
    with pytest.raises(ConcatError, match="not a Parquet file"):
        join([b"PAR1nope"])
    with pytest.raises(ConcatError, match="no parts"):
        joined_footer([])


SAMPLE = part(table([("a", 1.0, 1), (None, None, None), ("c", 3.0, 3)]), row_group_size=2)


@given(st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6))
def test_a_mutated_part_joins_or_raises_a_byom_error(edits: list[tuple[int, int]]) -> None:
    length = int.from_bytes(SAMPLE[-8:-4], "little")
    footer = bytearray(SAMPLE[-8 - length : -8])
    for position, value in edits:
        footer[position % len(footer)] = value
    data = SAMPLE[: -8 - length] + bytes(footer) + SAMPLE[-8:]
    result = within_memory(lambda: join([SAMPLE, data]), 4 * MIB)
    assert isinstance(result, bytes | ByomError), result


def test_a_footer_of_another_shape_is_a_concat_error() -> None:
    start, footer = read_part_footer(lambda s, e: SAMPLE[s:e], len(SAMPLE))
    bad: Struct = decode(SAMPLE[start:-8])
    bad[4] = (8, b"row groups")
    with pytest.raises(ConcatError, match="row groups"):
        joined_footer([(footer, 4), (bad, 100)])
