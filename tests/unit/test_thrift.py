"""byom's one Thrift compact reader and writer: lossless, and bounded on any bytes."""

from __future__ import annotations

import io
import math
import struct
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ByomError
from shared.thrift_compact import (
    BINARY,
    BOOL_TRUE,
    BYTE,
    DOUBLE,
    I16,
    I32,
    I64,
    LIST,
    MAP,
    MAX_DEPTH,
    SET,
    STRUCT,
    Struct,
    ThriftError,
    decode,
    encode,
)
from tests.unit.bounds import MIB, within_memory


def footer_of(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    length = struct.unpack("<I", data[-8:-4])[0]
    return data[-8 - length : -8]


def test_real_footers_are_read_and_written_back_byte_for_byte() -> None:
    tables = [
        pa.table({"id": ["a", None], "x": [1.5, float("nan")], "b": [True, False]}),
        pa.table({"m": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64()))}),
    ]
    for table in tables:
        footer = footer_of(table)
        assert encode(decode(footer)) == footer


def test_only_the_fields_asked_for_are_built() -> None:
    fields: Struct = {
        1: (I32, 7),
        2: (LIST, (STRUCT, [{1: (BINARY, b"a"), 2: (I64, 3)}, {2: (I64, 4)}])),
        3: (BINARY, b"statistics"),
    }
    assert decode(encode(fields), {2: {2: True}}) == {
        2: (LIST, (STRUCT, [{2: (I64, 3)}, {2: (I64, 4)}]))
    }


def test_booleans_in_lists_and_maps_take_a_byte_each() -> None:
    fields: Struct = {1: (LIST, (BOOL_TRUE, [1, 2, 1])), 2: (MAP, (BOOL_TRUE, BYTE, [(1, 9)]))}
    data = encode(fields)
    assert data == b"\x19\x31\x01\x02\x01\x1b\x01\x13\x01\x09\x00"
    assert decode(data) == fields


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x1b\xe8\x07\x11\x00", "claims 1000 elements"),  # a map of 1,000 booleans, no bytes
        (b"\x19\xf1\xff\xff\xff\x0f\x00", "claims"),  # a list of 2**32 booleans
        (b"\x18\xff\xff\xff\x7f", "claims"),  # a string of 256 MiB in five bytes
        (b"\x15\xff\xff\xff\xff\x1f", "does not fit in 32 bits"),
        (b"\x16" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x1d\x00", "unknown type 13"),
        (b"\x19\x0e\x00", "unknown type 14"),
        (b"\x1b\x01\xf0\x00", "unknown type 15"),
        (b"\x17\x00\x00", "ends inside a double"),
        (b"\x15", "ends inside a value"),
    ],
)
def test_malformed_bytes_are_a_thrift_error(data: bytes, problem: str) -> None:
    with pytest.raises(ThriftError, match=problem):
        decode(data)


def test_nesting_stops_at_the_depth_bound() -> None:
    nested = b"\x1c" * (MAX_DEPTH + 1) + b"\x00" * (MAX_DEPTH + 2)
    with pytest.raises(ThriftError, match="nest more than"):
        decode(nested)
    assert decode(b"\x1c" * 3 + b"\x00" * 4) == {1: (STRUCT, {1: (STRUCT, {1: (STRUCT, {})})})}


def test_the_value_budgets_bound_time_and_memory() -> None:
    empties = b"\x19\xfc\xa0\x1f" + b"\x00" * 4000 + b"\x00"  # a list of 4,000 empty structs
    assert len(decode(empties)[1][1][1]) == 4000
    with pytest.raises(ThriftError, match="byom keeps"):
        decode(empties, max_built=1000)
    with pytest.raises(ThriftError, match="byom reads"):
        decode(empties, {}, max_read=1000)
    assert decode(empties, {}, max_built=0) == {}  # skipped values are not built


def test_thrift_errors_are_byom_errors() -> None:
    assert issubclass(ThriftError, ByomError)


leaf = st.one_of(
    st.tuples(st.just(BOOL_TRUE), st.booleans()),
    st.tuples(st.just(BYTE), st.integers(0, 255)),
    st.tuples(st.just(I16), st.integers(-(1 << 15), (1 << 15) - 1)),
    st.tuples(st.just(I32), st.integers(-(1 << 31), (1 << 31) - 1)),
    st.tuples(st.just(I64), st.integers(-(1 << 63), (1 << 63) - 1)),
    st.tuples(st.just(DOUBLE), st.floats(allow_nan=False)),
    st.tuples(st.just(BINARY), st.binary(max_size=20)),
)
field_ids = st.integers(-(1 << 15), (1 << 15) - 1)


def containers(inner: st.SearchStrategy[tuple[int, Any]]) -> st.SearchStrategy[tuple[int, Any]]:
    structs = st.dictionaries(field_ids, inner, max_size=4)
    i64_list = st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=20)
    return st.one_of(
        st.tuples(st.just(STRUCT), structs),
        st.tuples(st.just(LIST), st.tuples(st.just(STRUCT), st.lists(structs, max_size=3))),
        st.tuples(st.sampled_from([LIST, SET]), st.tuples(st.just(I64), i64_list)),
        st.tuples(
            st.just(MAP),
            st.tuples(
                st.just(BINARY), st.just(I32), st.lists(st.tuples(st.binary(), st.integers(0, 9)))
            ).filter(lambda m: bool(m[2])),
        ),
    )


structs = st.dictionaries(field_ids, st.recursive(leaf, containers, max_leaves=30), max_size=6)


@given(structs)
def test_any_struct_is_written_and_read_back_unchanged(fields: Struct) -> None:
    assert decode(encode(fields)) == fields


@given(st.binary(max_size=2048))
def test_any_bytes_decode_or_raise_a_thrift_error_in_bounded_memory(data: bytes) -> None:
    result = within_memory(lambda: decode(data), 2 * MIB)
    assert isinstance(result, dict | ThriftError), result
    if isinstance(result, dict) and not has_nan(result):
        assert decode(encode(result)) == result


def has_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(has_nan(v) for v in value.values())
    if isinstance(value, tuple | list):
        return any(has_nan(v) for v in value)
    return False
