"""The Parquet footer reader against crafted and arbitrary footers.

Each finding of the review has its own test (a MAP of booleans that never
advanced, a name stored as an integer, footers of empty structs, a column with
no offsets, a footer over the limit); the property tests then assert, for any
bytes and for mutations of real pyarrow footers, that the reader returns a
footer or raises ``FooterError`` (an ``InputError`` naming the file), within
hypothesis's deadline and a stated memory bound.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import thrift_compact
from shared.errors import InputError
from shared.parquet_footer import MAGIC, MAX_FOOTER_BYTES, Footer, FooterError, read_footer
from shared.thrift_compact import BINARY, I32, I64, LIST, MAP, STRUCT, Struct, decode, encode
from tests.unit.bounds import MIB, within_memory

URI = "s3://byom-local/input/t.parquet"
# A footer of a few KB decodes in well under a MiB; this leaves room for the
# decoded structs and the reader's own frames, and none for a runaway.
FUZZ_MEMORY = 4 * MIB


def parquet_file(table: pa.Table, **options: object) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


SAMPLES = [
    parquet_file(pa.table({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})),
    parquet_file(
        pa.table({"n": np.arange(50, dtype=np.int32), "y": np.linspace(0, 1, 50)}),
        row_group_size=20,
    ),
    parquet_file(pa.table({"s": pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())]))})),
    parquet_file(pa.table({"x": pa.array([], pa.float64())})),
]


def split(data: bytes) -> tuple[bytes, bytes]:
    """A Parquet file's bytes before its footer, and the footer."""
    length = struct.unpack("<I", data[-8:-4])[0]
    return data[: -8 - length], data[-8 - length : -8]


def with_footer(head: bytes, footer: bytes) -> bytes:
    return head + footer + struct.pack("<I", len(footer)) + MAGIC


def read(data: bytes) -> Footer:
    return read_footer(lambda start, end: data[start:end], len(data), uri=URI)


def edited(edit_meta: object) -> bytes:
    """The first sample with its decoded footer changed by ``edit_meta``."""
    head, footer = split(SAMPLES[0])
    meta = decode(footer)
    edit_meta(meta)  # type: ignore[operator]
    return with_footer(head, encode(meta))


def first_column_chunk(meta: Struct) -> Struct:
    group: Struct = meta[4][1][1][0]
    column: Struct = group[1][1][1][0]
    return column


def test_a_real_footer_reads_as_before() -> None:
    footer = read(SAMPLES[1])
    assert footer.columns == ("n", "y") and footer.rows == 50
    assert [g.rows for g in footer.row_groups] == [20, 20, 10]
    assert all(4 <= g.start < g.end <= footer.start for g in footer.row_groups)


def test_a_map_of_booleans_must_hold_its_elements() -> None:
    # A MAP claiming 1,000 boolean pairs, and no bytes for them: the reader once
    # returned without advancing (up to 2**70 times over), and read on as if fine.
    head, footer = split(SAMPLES[0])
    field_20_map = bytes([MAP, 20 << 1]) + b"\xe8\x07" + bytes([0x11])
    data = with_footer(head, footer[:-1] + field_20_map + b"\x00")
    with pytest.raises(FooterError, match="claims 1000 elements"):
        read(data)


def test_a_map_of_booleans_reads_one_byte_each() -> None:
    pairs = bytes([MAP << 0 | 0x10]) + b"\x02" + bytes([0x11]) + b"\x01\x02\x02\x01" + b"\x00"
    assert decode(pairs) == {1: (MAP, (1, 1, [(1, 2), (2, 1)]))}


@pytest.mark.timeout(20)  # before the fix this loop ran up to 2**62 times
def test_a_map_claiming_2_to_the_62_booleans_is_refused_at_once() -> None:
    head, footer = split(SAMPLES[0])
    count = b"\x80" * 8 + b"\x40"  # varint 2**62
    data = with_footer(head, footer[:-1] + bytes([MAP, 40]) + count + b"\x11\x00")
    with pytest.raises(FooterError):
        read(data)


def test_a_column_name_stored_as_an_integer_is_refused() -> None:
    # Once reached bytes(n): a name of n zero bytes, or a MemoryError for a large n.
    def name_as_int(meta: Struct) -> None:
        meta[2][1][1][1][4] = (I64, 7)

    with pytest.raises(FooterError, match="name is stored as Thrift type 6"):
        read(edited(name_as_int))


def test_a_footer_of_empty_structs_is_read_in_bounded_memory() -> None:
    # 128 KiB of empty structs in a field planning skips: once a dict each, over
    # 9 MB (16 MiB took 1.17 GB); now read and checked without being built.
    head, footer = split(SAMPLES[0])
    count = 128 * 1024
    empties = bytes([LIST, 5 << 1, 0xF0 | STRUCT]) + varint(count) + b"\x00" * count
    data = with_footer(head, footer[:-1] + empties + b"\x00")
    result = within_memory(lambda: read(data), 2 * MIB)  # the footer and a copy of it
    assert isinstance(result, Footer) and result.columns == ("id", "x")


def test_empty_structs_planning_keeps_stop_at_the_build_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Row groups are kept, so their structs are built, but never past the budget.
    monkeypatch.setattr(thrift_compact, "MAX_VALUES_BUILT", 10_000)
    count = 100_000
    head, _ = split(SAMPLES[0])
    footer = bytes([0x40 | LIST, 0xF0 | STRUCT]) + varint(count) + b"\x00" * count + b"\x00"
    with pytest.raises(FooterError, match="more values than byom keeps"):
        read(with_footer(head, footer))


def test_a_footer_over_the_limit_is_refused_before_it_is_read() -> None:
    size, asked = 64 * MIB, []
    tail = struct.pack("<I", MAX_FOOTER_BYTES + 1) + MAGIC

    def read_range(start: int, end: int) -> bytes:
        asked.append((start, end))
        return tail[start - (size - 8) :]

    with pytest.raises(FooterError, match=f"over the {MAX_FOOTER_BYTES}-byte limit") as caught:
        read_footer(read_range, size, uri=URI)
    assert asked == [(size - 8, size)] and caught.value.uri == URI


def test_a_column_with_no_metadata_is_an_input_error() -> None:
    # Once min() of nothing: a ValueError that reached the dead-letter queue.
    def without_meta(meta: Struct) -> None:
        del first_column_chunk(meta)[3]

    with pytest.raises(FooterError, match="row group 1, column chunk 1 has no metadata"):
        read(edited(without_meta))


def test_a_column_with_no_offsets_is_an_input_error() -> None:
    def without_offsets(meta: Struct) -> None:
        chunk = first_column_chunk(meta)[3][1]
        chunk[9] = (I64, 0)
        chunk.pop(11, None)

    with pytest.raises(FooterError, match="row group 1, column chunk 1 has no page offsets"):
        read(edited(without_offsets))


def test_a_column_past_the_footer_is_an_input_error() -> None:
    def far(meta: Struct) -> None:
        first_column_chunk(meta)[3][1][7] = (I64, 1 << 40)

    with pytest.raises(FooterError, match="lies past the start of the footer"):
        read(edited(far))


def test_counts_must_not_be_negative_and_fields_must_have_their_types() -> None:
    def negative_rows(meta: Struct) -> None:
        meta[3] = (I64, -5)

    def schema_as_string(meta: Struct) -> None:
        meta[2] = (BINARY, b"schema")

    def type_as_string(meta: Struct) -> None:
        meta[2][1][1][2][1] = (BINARY, b"DOUBLE")

    with pytest.raises(FooterError, match="row count is negative"):
        read(edited(negative_rows))
    with pytest.raises(FooterError, match="the schema is stored as Thrift type 8"):
        read(edited(schema_as_string))
    with pytest.raises(FooterError, match="type is stored as Thrift type 8"):
        read(edited(type_as_string))
    assert read(edited(lambda meta: meta.__setitem__(1, (I32, 1)))).rows == 3


def test_the_error_is_an_input_error_naming_the_file() -> None:
    with pytest.raises(InputError) as caught:
        read(b"PAR1" + b"\xff" * 20 + struct.pack("<I", 20) + MAGIC)
    assert caught.value.uri == URI
    assert str(caught.value).startswith(f"{URI}: is not a Parquet file byom can read:")


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@given(st.binary(max_size=4096))
def test_any_footer_bytes_give_a_footer_or_a_footer_error(footer: bytes) -> None:
    result = within_memory(lambda: read(with_footer(MAGIC, footer)), FUZZ_MEMORY)
    assert isinstance(result, Footer | FooterError), result


mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 12)),
)


def mutate(footer: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    data = bytearray(footer)
    for kind, position, what in mutations:
        at = position % (len(data) + 1)
        if kind == "set" and at < len(data) and isinstance(what, int):
            data[at] = what
        elif kind == "insert" and isinstance(what, bytes):
            data[at:at] = what
        elif kind == "delete" and isinstance(what, int):
            del data[at : at + what]
    return bytes(data)


@given(
    sample=st.sampled_from(SAMPLES),
    mutations=st.lists(mutation, min_size=1, max_size=6),
)
def test_mutated_real_footers_give_a_footer_or_a_footer_error(
    sample: bytes, mutations: list[tuple[str, int, object]]
) -> None:
    head, footer = split(sample)
    data = with_footer(head, mutate(footer, mutations))
    result = within_memory(lambda: read(data), FUZZ_MEMORY)
    assert isinstance(result, Footer | FooterError), result
    if isinstance(result, Footer):
        assert all(4 <= g.start <= g.end <= result.start for g in result.row_groups)


@given(st.binary(max_size=64), st.integers(0, 16))
def test_any_short_file_gives_a_footer_or_a_footer_error(tail: bytes, padding: int) -> None:
    file = b"\x00" * padding + tail + MAGIC
    result = within_memory(lambda: read(file), FUZZ_MEMORY)
    assert isinstance(result, Footer | FooterError), result
