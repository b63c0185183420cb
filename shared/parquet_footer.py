"""A Parquet file's footer, read from its last bytes without pyarrow.

Ingest plans Parquet uploads in Lambda, whose bundle has no pyarrow (it alone is
over 150 MB unzipped). The footer is Thrift's compact protocol, so byom's one
reader of it (``shared/thrift_compact.py``) gives what planning needs: the columns
(leaf names and physical types), the row count and each row group's rows and
byte span. Only the footer is read: two ranged GETs (the last 8 bytes, then the
footer itself).

The footer is uploaded bytes: its length is bounded (``MAX_FOOTER_BYTES``), the
Thrift reader bounds the values it decodes, every field used is checked for its
wire type and range, and every problem is a ``FooterError`` (an ``InputError``)
naming the file.

Reference: parquet-format's ``parquet.thrift`` (FileMetaData, SchemaElement,
RowGroup, ColumnChunk, ColumnMetaData) and Thrift's compact protocol spec.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from shared.csvchunks import ReadRange
from shared.errors import InputError
from shared.thrift_compact import (
    BINARY,
    I16,
    I32,
    I64,
    LIST,
    SET,
    STRUCT,
    Keep,
    Struct,
    ThriftError,
    decode,
)

MAGIC = b"PAR1"
# Real footers take about 3 bytes a value, so a footer this long reads within
# thrift_compact's budgets; a longer one is refused before it is fetched.
MAX_FOOTER_BYTES = 16 * 1024 * 1024
# Physical types (parquet.thrift Type) that hold numbers a model can take.
NUMERIC_TYPES = {1: "INT32", 2: "INT64", 4: "FLOAT", 5: "DOUBLE"}
TYPE_NAMES = {0: "BOOLEAN", 3: "INT96", 6: "BYTE_ARRAY", 7: "FIXED_LEN_BYTE_ARRAY"} | NUMERIC_TYPES
# Annotations on a numeric physical type that keep it a number (parquet.thrift
# LogicalType DECIMAL, INTEGER; ConvertedType DECIMAL, UINT_8 .. INT_64); any other
# (DATE, TIME, TIMESTAMP, INTERVAL ...) is not a number a model can take.
NUMERIC_LOGICAL = {5: "DECIMAL", 10: "INTEGER"}
NUMERIC_CONVERTED = {5, *range(11, 19)}
LOGICAL_NAMES = {6: "DATE", 7: "TIME", 8: "TIMESTAMP", 11: "UNKNOWN", 15: "FLOAT16"}
CONVERTED_NAMES = {6: "DATE", 7: "TIME_MILLIS", 8: "TIME_MICROS", 9: "TIMESTAMP_MILLIS",
                   10: "TIMESTAMP_MICROS", 21: "INTERVAL"}  # fmt: skip

# Field ids (parquet.thrift): FileMetaData, SchemaElement, RowGroup, ColumnChunk, ColumnMetaData.
_FM_SCHEMA, _FM_ROWS, _FM_ROW_GROUPS = 2, 3, 4
_SE_TYPE, _SE_NAME, _SE_CHILDREN, _SE_CONVERTED, _SE_LOGICAL = 1, 4, 5, 6, 10
_RG_COLUMNS, _RG_ROWS = 1, 3
_CC_META = 3
_CM_SIZE, _CM_DATA_PAGE, _CM_DICTIONARY_PAGE = 7, 9, 11
# Only what planning needs is built; statistics and key-value metadata are skipped.
_KEEP: Keep = {
    _FM_SCHEMA: {
        _SE_TYPE: True,
        _SE_NAME: True,
        _SE_CHILDREN: True,
        _SE_CONVERTED: True,
        _SE_LOGICAL: True,  # a union: one member, a struct of a field or two
    },
    _FM_ROWS: True,
    _FM_ROW_GROUPS: {
        _RG_COLUMNS: {_CC_META: {_CM_SIZE: True, _CM_DATA_PAGE: True, _CM_DICTIONARY_PAGE: True}},
        _RG_ROWS: True,
    },
}


class FooterError(InputError):
    """Not a Parquet file byom can read; the message names the file and says why."""

    def __init__(self, uri: str, problem: str) -> None:
        super().__init__(uri, f"is not a Parquet file byom can read: {problem}")


@dataclass(frozen=True)
class RowGroup:
    rows: int
    start: int  # first byte of its column chunks
    end: int  # one past the last


@dataclass(frozen=True)
class Footer:
    start: int  # offset of the footer's first byte
    rows: int
    columns: tuple[str, ...]  # leaf columns, in order
    types: tuple[int, ...]  # their physical types
    nested: bool  # some column sits inside a group (struct, list, map)
    row_groups: tuple[RowGroup, ...]
    # Per leaf: the name of an annotation that makes it something other than a
    # number (DATE, TIMESTAMP ...), None for a plain or numeric one.
    annotations: tuple[str | None, ...] = ()


def read_footer(read: ReadRange, size: int, *, uri: str = "the upload") -> Footer:
    """The footer of the Parquet object ``uri`` of ``size`` bytes that ``read`` reads."""
    if size < 12:
        raise FooterError(uri, "too short to be a Parquet file")
    tail = read(size - 8, size)
    if tail[4:] != MAGIC:
        raise FooterError(uri, "does not end with Parquet's PAR1 marker")
    length = struct.unpack("<I", tail[:4])[0]
    if length > size - 12:
        raise FooterError(uri, f"its footer length ({length} bytes) is longer than the file")
    if length > MAX_FOOTER_BYTES:
        raise FooterError(
            uri,
            f"its footer is {length} bytes, over the {MAX_FOOTER_BYTES}-byte limit; "
            "write it with fewer row groups or columns",
        )
    start = size - 8 - length
    try:
        meta = decode(read(start, size - 8), _KEEP)
    except ThriftError as exc:
        raise FooterError(uri, f"its footer cannot be read: {exc}") from None
    fields = _Fields(uri)
    schema = fields.structs(meta, _FM_SCHEMA, "the schema")
    if not schema:
        raise FooterError(uri, "its footer has no schema")
    leaves = [e for e in schema[1:] if not fields.integer(e, _SE_CHILDREN, "num_children", 0)]
    return Footer(
        start=start,
        rows=fields.count(meta, _FM_ROWS, "the row count"),
        columns=tuple(fields.name(e) for e in leaves),
        types=tuple(fields.integer(e, _SE_TYPE, "a column's type", -1) for e in leaves),
        annotations=tuple(fields.annotation(e) for e in leaves),
        nested=len(leaves) != len(schema) - 1,
        row_groups=tuple(
            _row_group(fields, group, number, start)
            for number, group in enumerate(fields.structs(meta, _FM_ROW_GROUPS, "row groups"), 1)
        ),
    )


def _row_group(fields: _Fields, group: Struct, number: int, footer_start: int) -> RowGroup:
    spans = []
    for index, column in enumerate(fields.structs(group, _RG_COLUMNS, "columns"), 1):
        where = f"row group {number}, column chunk {index}"
        if _CC_META not in column:
            raise FooterError(fields.uri, f"{where} has no metadata (where its pages are)")
        chunk = fields.struct(column, _CC_META, where)
        offsets = [
            fields.integer(chunk, field, f"{where}'s page offset", 0)
            for field in (_CM_DATA_PAGE, _CM_DICTIONARY_PAGE)
        ]
        first = min((o for o in offsets if o >= len(MAGIC)), default=None)
        if first is None:
            raise FooterError(fields.uri, f"{where} has no page offsets")
        end = first + fields.count(chunk, _CM_SIZE, f"{where}'s size")
        if end > footer_start:
            raise FooterError(fields.uri, f"{where} lies past the start of the footer")
        spans.append((first, end))
    if not spans:
        raise FooterError(fields.uri, f"row group {number} has no columns")
    return RowGroup(
        rows=fields.count(group, _RG_ROWS, f"row group {number}'s row count"),
        start=min(s for s, _ in spans),
        end=max(e for _, e in spans),
    )


class _Fields:
    """Typed reads of decoded fields: a field of the wrong wire type is the file's fault."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def _get(self, struct_: Struct, field: int, kinds: tuple[int, ...], what: str) -> Any:
        kind, value = struct_[field]
        if kind not in kinds:
            raise FooterError(self.uri, f"{what} is stored as Thrift type {kind}")
        return value

    def integer(self, struct_: Struct, field: int, what: str, default: int) -> int:
        if field not in struct_:
            return default
        value: int = self._get(struct_, field, (I16, I32, I64), what)
        return value

    def count(self, struct_: Struct, field: int, what: str) -> int:
        value = self.integer(struct_, field, what, 0)
        if value < 0:
            raise FooterError(self.uri, f"{what} is negative ({value})")
        return value

    def name(self, element: Struct) -> str:
        if _SE_NAME not in element:
            return ""
        raw: bytes = self._get(element, _SE_NAME, (BINARY,), "a column's name")
        return raw.decode("utf-8", "replace")

    def annotation(self, element: Struct) -> str | None:
        """What a leaf's logical (else converted) type makes it, when not a number."""
        if _SE_LOGICAL in element:
            logical = self.struct(element, _SE_LOGICAL, "a column's logical type")
            member = next(iter(logical), None)
            if member is None or member in NUMERIC_LOGICAL:
                return None
            return LOGICAL_NAMES.get(member, f"logical type {member}")
        converted = self.integer(element, _SE_CONVERTED, "a column's converted type", -1)
        if converted < 0 or converted in NUMERIC_CONVERTED:
            return None
        return CONVERTED_NAMES.get(converted, f"converted type {converted}")

    def struct(self, struct_: Struct, field: int, what: str) -> Struct:
        value: Struct = self._get(struct_, field, (STRUCT,), what)
        return value

    def structs(self, struct_: Struct, field: int, what: str) -> list[Struct]:
        if field not in struct_:
            return []
        element, items = self._get(struct_, field, (LIST, SET), what)
        if items and element != STRUCT:
            raise FooterError(self.uri, f"{what} hold Thrift type {element}, not structs")
        return list(items)
