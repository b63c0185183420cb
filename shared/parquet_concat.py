"""One Parquet file from several: the parts' row groups back to back, one footer.

Each chunk of a job with Parquet output is a small Parquet file of its own.
Concatenating the files does not make a Parquet file, but their row groups can
be moved as they are: the output is ``PAR1``, then every part's bytes between
its leading ``PAR1`` and its footer, then a footer holding every part's row
groups with their offsets moved by where their bytes now sit. No page is
decoded, so this runs in the status function without pyarrow.

Parts must have the same schema, and no page indexes or bloom filters (they
sit outside the row groups); the workers write them so.
"""

from __future__ import annotations

import struct
from copy import deepcopy
from typing import Any

from shared.csvchunks import ReadRange
from shared.errors import ByomError
from shared.parquet_footer import MAGIC, MAX_FOOTER_BYTES
from shared.thrift_compact import I16, I64, LIST, STRUCT, Struct, decode, encode

# FileMetaData, RowGroup, ColumnChunk and ColumnMetaData field ids (parquet.thrift).
_SCHEMA, _NUM_ROWS, _ROW_GROUPS = 2, 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CM_OFFSETS = (9, 10, 11)  # data, index and dictionary page offsets
_CM_BLOOM = 14


class ConcatError(ByomError, ValueError):
    """Parts that cannot be joined into one file; the message says why."""


def read_part_footer(read: ReadRange, size: int) -> tuple[int, Struct]:
    """Where a part's footer starts, and the footer decoded losslessly."""
    if size < 12 or read(size - 4, size) != MAGIC:
        raise ConcatError("a part is not a Parquet file")
    length = struct.unpack("<I", read(size - 8, size - 4))[0]
    if length > min(MAX_FOOTER_BYTES, size - 12):
        raise ConcatError(f"a part's footer length ({length} bytes) is not possible")
    start = size - 8 - length
    return start, decode(read(start, size - 8))


def _field(fields: Struct, field: int, kind: int, what: str) -> Any:
    if field not in fields or fields[field][0] != kind:
        raise ConcatError(f"a part's footer has no {what} (field {field} of Thrift type {kind})")
    return fields[field][1]


def _structs(fields: Struct, field: int, what: str) -> list[Struct]:
    element, items = _field(fields, field, LIST, what)
    if items and element != STRUCT:
        raise ConcatError(f"a part's footer holds its {what} as Thrift type {element}")
    return list(items)


def _shifted(fields: Struct, field: int, delta: int) -> None:
    # An offset below the leading PAR1 means "absent" (pyarrow writes 0 for a
    # column chunk's file_offset, and for data_page_offset in an empty part):
    # it stays as it is, or it would point into the part before.
    if field in fields:
        offset = _field(fields, field, I64, "offset")
        if offset >= len(MAGIC):
            fields[field] = (I64, offset + delta)


def _moved(group: Struct, delta: int, ordinal: int) -> Struct:
    group = deepcopy(group)
    _shifted(group, _RG_FILE_OFFSET, delta)
    if _RG_ORDINAL in group:
        group[_RG_ORDINAL] = (I16, ordinal)
    for column in _structs(group, _RG_COLUMNS, "column chunks"):
        if _CC_OFFSET_INDEX in column or _CC_COLUMN_INDEX in column:
            raise ConcatError("a part has page indexes; write parts without them")
        _shifted(column, _CC_FILE_OFFSET, delta)
        meta = _field(column, _CC_META, STRUCT, "column metadata")
        if _CM_BLOOM in meta:
            raise ConcatError("a part has bloom filters; write parts without them")
        for field in _CM_OFFSETS:
            _shifted(meta, field, delta)
    return group


def joined_footer(parts: list[tuple[Struct, int]]) -> bytes:
    """The footer (with its length and ``PAR1``) of the parts' row groups, each part
    given with the offset in the output where its data (its byte 4) now starts."""
    if not parts:
        raise ConcatError("no parts to join")
    first = parts[0][0]
    schema = encode({1: (LIST, _field(first, _SCHEMA, LIST, "schema"))})
    groups: list[Struct] = []
    rows = 0
    for meta, start in parts:
        if encode({1: (LIST, _field(meta, _SCHEMA, LIST, "schema"))}) != schema:
            raise ConcatError("the parts' schemas differ")
        rows += _field(meta, _NUM_ROWS, I64, "row count")
        if _ROW_GROUPS in meta:
            for group in _structs(meta, _ROW_GROUPS, "row groups"):
                groups.append(_moved(group, start - len(MAGIC), len(groups)))
    footer = dict(first)
    footer[_NUM_ROWS] = (I64, rows)
    footer[_ROW_GROUPS] = (LIST, (STRUCT, groups))
    body = encode(footer)
    return body + struct.pack("<I", len(body)) + MAGIC
