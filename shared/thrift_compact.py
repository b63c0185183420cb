"""Thrift's compact protocol, read and written: byom's one reader of Parquet footers.

A struct reads into ``{field id: (type, value)}``, keeping every field's wire
type, so writing it back gives the same bytes; a caller changes only the fields
it knows (the offsets of row groups, when Parquet parts are concatenated).
Lists are ``(element type, [values])``; booleans inside lists and maps keep their
byte. Pure Python, for the Lambda bundles (no pyarrow there).

The bytes come from uploads, so reading them is bounded whatever they hold:
every value consumes at least one byte (so no loop can spin in place), a
collection may not claim more elements than bytes remain, values nest at most
``MAX_DEPTH`` deep, and one read reads at most ``MAX_VALUES_READ`` values (its
time) and builds at most ``MAX_VALUES_BUILT`` (its memory). Integers must fit
their declared width. Anything else is a ``ThriftError``.

A caller that needs only some fields passes a ``Keep`` spec: the other fields
are checked and skipped without being built, so a footer's statistics and
key-value metadata cost time but no memory.

Reference: Thrift's compact protocol specification (thrift-compact-protocol.md).
"""

from __future__ import annotations

import struct
from typing import Any, TypeAlias

from shared.errors import ByomError

BOOL_TRUE, BOOL_FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)
Struct = dict[int, tuple[int, Any]]
# Which fields of a struct to build: True keeps a value whole; a dict keeps only
# the listed fields of a struct (or of each struct in a list or set), each by its
# own spec. Fields not listed are read and skipped.
Keep: TypeAlias = "bool | dict[int, Keep]"

MAX_DEPTH = 32
# Each value read costs about a microsecond, and each value built about 80 bytes
# (a tuple, a dict slot, an int). Real footers take about 3 bytes a value, and
# planning builds 5 of the 30-odd values of a column chunk, so a 16 MiB footer
# (parquet_footer.MAX_FOOTER_BYTES) reads within the first budget and builds
# within the second: at most a few seconds and under 100 MB, whatever the bytes.
MAX_VALUES_READ = 6_000_000
MAX_VALUES_BUILT = 1_000_000
_INT_BITS = {I16: 16, I32: 32, I64: 64}
_BOOLS = (BOOL_TRUE, BOOL_FALSE)


class ThriftError(ByomError, ValueError):
    """Bytes that are not the compact encoding of a struct (or too large to read)."""


class Reader:
    def __init__(
        self, data: bytes, *, max_read: int | None = None, max_built: int | None = None
    ) -> None:
        self.data, self.pos = data, 0
        self.read_left = MAX_VALUES_READ if max_read is None else max_read
        self.built_left = MAX_VALUES_BUILT if max_built is None else max_built

    def _spend(self, keep: Keep) -> None:
        self.read_left -= 1
        if self.read_left < 0:
            raise ThriftError("it holds more values than byom reads in one footer")
        if keep:
            self.built_left -= 1
            if self.built_left < 0:
                raise ThriftError("it holds more values than byom keeps from one footer")

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
            if shift >= 70:
                raise ThriftError("a varint is longer than 10 bytes")

    def _int(self, bits: int) -> int:
        raw = self._varint()
        value = (raw >> 1) ^ -(raw & 1)
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise ThriftError(f"an integer does not fit in {bits} bits")
        return value

    def _count(self, count: int, bytes_each: int) -> int:
        # Every element takes at least one byte, so a count past the bytes left is a lie.
        if count * bytes_each > len(self.data) - self.pos:
            raise ThriftError(f"a collection claims {count} elements, more than the bytes left")
        return count

    def _type(self, kind: int, what: str) -> int:
        if not BOOL_TRUE <= kind <= STRUCT:
            raise ThriftError(f"unknown type {kind} for {what}")
        return kind

    def _value(self, kind: int, depth: int, keep: Keep) -> Any:
        self._spend(keep)
        if kind in _BOOLS:  # inside a list or map: one byte each
            return self._byte()
        if kind == BYTE:
            return self._byte()
        if kind in _INT_BITS:
            return self._int(_INT_BITS[kind])
        if kind == DOUBLE:
            raw = self.data[self.pos : self.pos + 8]
            if len(raw) != 8:
                raise ThriftError("the data ends inside a double")
            self.pos += 8
            return struct.unpack("<d", raw)[0]
        if kind == BINARY:
            length = self._count(self._varint(), 1)
            start, self.pos = self.pos, self.pos + length
            return self.data[start : self.pos] if keep else b""
        if depth >= MAX_DEPTH:
            raise ThriftError(f"values nest more than {MAX_DEPTH} deep")
        if kind in (LIST, SET):
            header = self._byte()
            count, element = header >> 4, self._type(header & 0x0F, "a list's elements")
            if count == 15:
                count = self._varint()
            self._count(count, 1)
            if not keep:  # read and checked, but no list of them is built
                for _ in range(count):
                    self._value(element, depth + 1, keep)
                return element, []
            return element, [self._value(element, depth + 1, keep) for _ in range(count)]
        if kind == MAP:
            count = self._count(self._varint(), 2)
            if count == 0:
                return (0, 0, [])
            types = self._byte()
            key = self._type(types >> 4, "a map's keys")
            value = self._type(types & 0x0F, "a map's values")
            items = []
            for _ in range(count):
                pair = (self._value(key, depth + 1, keep), self._value(value, depth + 1, keep))
                if keep:
                    items.append(pair)
            return (key, value, items)
        if kind == STRUCT:
            return self.struct(depth + 1, keep)
        raise ThriftError(f"unknown type {kind}")

    def struct(self, depth: int = 0, keep: Keep = True) -> Struct:
        """The struct at the current position, with the fields ``keep`` asks for."""
        fields: Struct = {}
        last = 0
        while True:
            header = self._byte()
            if header == 0:
                return fields
            delta, kind = header >> 4, self._type(header & 0x0F, "a struct's field")
            field = last + delta if delta else self._int(16)
            wanted = keep if isinstance(keep, bool) else keep.get(field, False)
            if kind in _BOOLS:  # the value is in the field header itself
                self._spend(wanted)
                value: Any = kind == BOOL_TRUE
                kind = BOOL_TRUE
            else:
                value = self._value(kind, depth, wanted)
            if wanted:
                fields[field] = (kind, value)
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
        if kind in (BOOL_TRUE, BOOL_FALSE, BYTE):
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
            wire = (BOOL_TRUE if value else BOOL_FALSE) if kind in _BOOLS else kind
            delta = field - last
            if 0 < delta <= 15:
                self.out.append(delta << 4 | wire)
            else:
                self.out.append(wire)
                self._zigzag(field)
            if wire not in _BOOLS:
                self._value(kind, value)
            last = field
        self.out.append(0)


def decode(
    data: bytes, keep: Keep = True, *, max_read: int | None = None, max_built: int | None = None
) -> Struct:
    """The struct ``data`` starts with (fields per ``keep``); ThriftError if it is not one."""
    return Reader(data, max_read=max_read, max_built=max_built).struct(keep=keep)


def encode(fields: Struct) -> bytes:
    writer = Writer()
    writer.struct(fields)
    return bytes(writer.out)
