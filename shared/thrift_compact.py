"""Thrift's compact protocol, read and written losslessly: enough for Parquet footers.

A struct reads into ``{field id: (type, value)}``, keeping every field's wire
type, so writing it back gives the same bytes; a caller changes only the fields
it knows (the offsets of row groups, when Parquet parts are concatenated).
Lists are ``(element type, [values])``; booleans inside lists keep their byte.
Pure Python, for the status function's bundle (no pyarrow there).

Reference: Thrift's compact protocol specification (thrift-compact-protocol.md).
"""

from __future__ import annotations

import struct
from typing import Any

BOOL_TRUE, BOOL_FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)
Struct = dict[int, tuple[int, Any]]
_MAX_DEPTH = 32


class ThriftError(ValueError):
    """Bytes that are not the compact encoding of a struct."""


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise ThriftError("the data ends inside a value")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def _varint(self) -> int:
        shift = result = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError("a varint is too long")

    def _zigzag(self) -> int:
        value = self._varint()
        return (value >> 1) ^ -(value & 1)

    def _value(self, kind: int, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ThriftError("structs nest too deeply")
        if kind == BYTE:
            return self._byte()
        if kind in (I16, I32, I64):
            return self._zigzag()
        if kind == DOUBLE:
            raw = self.data[self.pos : self.pos + 8]
            if len(raw) != 8:
                raise ThriftError("the data ends inside a double")
            self.pos += 8
            return struct.unpack("<d", raw)[0]
        if kind == BINARY:
            length = self._varint()
            raw = self.data[self.pos : self.pos + length]
            if len(raw) != length:
                raise ThriftError("the data ends inside a string")
            self.pos += length
            return raw
        if kind in (LIST, SET):
            header = self._byte()
            count, element = header >> 4, header & 0x0F
            if count == 15:
                count = self._varint()
            if element in (BOOL_TRUE, BOOL_FALSE):
                return element, [self._byte() for _ in range(count)]
            return element, [self._value(element, depth + 1) for _ in range(count)]
        if kind == MAP:
            count = self._varint()
            if count == 0:
                return (0, 0, [])
            types = self._byte()
            key, value = types >> 4, types & 0x0F
            items = [
                (self._value(key, depth + 1), self._value(value, depth + 1)) for _ in range(count)
            ]
            return (key, value, items)
        if kind == STRUCT:
            return self.struct(depth + 1)
        raise ThriftError(f"unknown type {kind}")

    def struct(self, depth: int = 0) -> Struct:
        fields: Struct = {}
        last = 0
        while True:
            header = self._byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, header & 0x0F
            field = last + delta if delta else self._zigzag()
            if kind in (BOOL_TRUE, BOOL_FALSE):
                fields[field] = (BOOL_TRUE, kind == BOOL_TRUE)
            else:
                fields[field] = (kind, self._value(kind, depth))
            last = field


class Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def _varint(self, value: int) -> None:
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                self.out.append(byte | 0x80)
            else:
                self.out.append(byte)
                return

    def _zigzag(self, value: int) -> None:
        self._varint((value << 1) ^ (value >> 63))

    def _value(self, kind: int, value: Any) -> None:
        if kind == BYTE:
            self.out.append(value & 0xFF)
        elif kind in (I16, I32, I64):
            self._zigzag(value)
        elif kind == DOUBLE:
            self.out += struct.pack("<d", value)
        elif kind == BINARY:
            self._varint(len(value))
            self.out += value
        elif kind in (LIST, SET):
            element, items = value
            if len(items) < 15:
                self.out.append(len(items) << 4 | element)
            else:
                self.out.append(0xF0 | element)
                self._varint(len(items))
            for item in items:
                if element in (BOOL_TRUE, BOOL_FALSE):
                    self.out.append(item)
                else:
                    self._value(element, item)
        elif kind == MAP:
            key, val, items = value
            self._varint(len(items))
            if items:
                self.out.append(key << 4 | val)
                for k, v in items:
                    self._value(key, k)
                    self._value(val, v)
        elif kind == STRUCT:
            self.struct(value)
        else:
            raise ThriftError(f"unknown type {kind}")

    def struct(self, fields: Struct) -> None:
        last = 0
        for field in sorted(fields):
            kind, value = fields[field]
            wire = (BOOL_TRUE if value else BOOL_FALSE) if kind in (BOOL_TRUE, BOOL_FALSE) else kind
            delta = field - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | wire)
            else:
                self.out.append(wire)
                self._zigzag(field)
            if wire not in (BOOL_TRUE, BOOL_FALSE):
                self._value(kind, value)
            last = field
        self.out.append(0)


def decode(data: bytes) -> Struct:
    return Reader(data).struct()


def encode(fields: Struct) -> bytes:
    writer = Writer()
    writer.struct(fields)
    return bytes(writer.out)
