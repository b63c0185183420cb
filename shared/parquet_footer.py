"""A Parquet file's footer, read from its last bytes without pyarrow.

Ingest plans Parquet uploads in Lambda, whose bundle has no pyarrow (it alone is
over 150 MB unzipped). The footer is Thrift's compact protocol, so a small
reader of that protocol gives what planning needs: the columns (leaf names and
physical types), the row count and each row group's rows and byte span. Only
the footer is read: two ranged GETs (the last 8 bytes, then the footer itself).

Reference: parquet-format's ``parquet.thrift`` (FileMetaData, SchemaElement,
RowGroup, ColumnChunk, ColumnMetaData) and Thrift's compact protocol spec.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from shared.csvchunks import ReadRange

MAGIC = b"PAR1"
MAX_FOOTER_BYTES = 64 * 1024 * 1024
# Physical types (parquet.thrift Type) that hold numbers a model can take.
NUMERIC_TYPES = {1: "INT32", 2: "INT64", 4: "FLOAT", 5: "DOUBLE"}
TYPE_NAMES = {0: "BOOLEAN", 3: "INT96", 6: "BYTE_ARRAY", 7: "FIXED_LEN_BYTE_ARRAY"} | NUMERIC_TYPES


class FooterError(ValueError):
    """Not a Parquet file byom can read; the message says why."""


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


class _Compact:
    """Thrift compact protocol, just enough to read a struct into {field id: value}."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise FooterError("the footer ends inside a value")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise FooterError("a varint in the footer is too long")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def value(self, kind: int, depth: int) -> Any:
        if depth > 32:
            raise FooterError("the footer nests too deeply")
        if kind in (1, 2):  # bool inside a struct's field header
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            raw = self.data[self.pos : self.pos + 8]
            self.pos += 8
            return struct.unpack("<d", raw)[0] if len(raw) == 8 else 0.0
        if kind == 8:
            length = self.varint()
            raw = self.data[self.pos : self.pos + length]
            if len(raw) != length:
                raise FooterError("the footer ends inside a string")
            self.pos += length
            return raw
        if kind in (9, 10):
            header = self.byte()
            count, element = header >> 4, header & 0x0F
            if count == 15:
                count = self.varint()
            if element in (1, 2):  # booleans in a list are one byte each
                return [self.byte() == 1 for _ in range(count)]
            return [self.value(element, depth + 1) for _ in range(count)]
        if kind == 11:
            count = self.varint()
            if count == 0:
                return {}
            types = self.byte()
            key_type, value_type = types >> 4, types & 0x0F
            return {
                self.value(key_type, depth + 1): self.value(value_type, depth + 1)
                for _ in range(count)
            }
        if kind == 12:
            return self.struct(depth + 1)
        raise FooterError(f"unknown Thrift type {kind} in the footer")

    def struct(self, depth: int = 0) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self.byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            field = last + delta if delta else self.zigzag()
            fields[field] = self.value(kind, depth)
            last = field


def read_footer(read: ReadRange, size: int) -> Footer:
    """The footer of the Parquet object of ``size`` bytes that ``read`` reads."""
    if size < 12:
        raise FooterError("too short to be a Parquet file")
    tail = read(size - 8, size)
    if tail[4:] != MAGIC:
        raise FooterError("does not end with Parquet's PAR1 marker")
    length = struct.unpack("<I", tail[:4])[0]
    if length > MAX_FOOTER_BYTES or length > size - 12:
        raise FooterError(f"its footer length ({length} bytes) is not possible")
    start = size - 8 - length
    try:
        meta = _Compact(read(start, size - 8)).struct()
    except (FooterError, IndexError, struct.error) as exc:
        raise FooterError(f"its footer cannot be read: {exc}") from None
    schema = meta.get(2) or []
    if not schema:
        raise FooterError("its footer has no schema")
    leaves = [e for e in schema[1:] if isinstance(e, dict) and not e.get(5)]
    names = tuple(bytes(e.get(4, b"")).decode("utf-8", "replace") for e in leaves)
    types = tuple(int(e.get(1, -1)) for e in leaves)
    groups = []
    for group in meta.get(4) or []:
        spans = []
        for column in group.get(1) or []:
            chunk = column.get(3) or {}
            first = min(
                offset
                for offset in (chunk.get(9), chunk.get(11))
                if isinstance(offset, int) and offset >= len(MAGIC)
            )
            spans.append((first, first + int(chunk.get(7, 0))))
        if not spans:
            raise FooterError("a row group has no columns")
        groups.append(
            RowGroup(rows=int(group.get(3, 0)), start=min(s for s, _ in spans),
                     end=max(e for _, e in spans))
        )  # fmt: skip
    return Footer(
        start=start,
        rows=int(meta.get(3, 0)),
        columns=names,
        types=types,
        nested=len(leaves) != len(schema) - 1,
        row_groups=tuple(groups),
    )
