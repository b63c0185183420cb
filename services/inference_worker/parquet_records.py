"""A chunk of a Parquet table: its row groups read by pyarrow from fetched ranges.

The worker fetches only the chunk's row groups and the footer; ``SparseFile``
lets pyarrow read them as if the file were whole. Feature columns must be
numbers (ingest refuses dates and timestamps from the footer already); a null
or a value past float32 is a bad row, named by row group and row.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.inference_worker.records import Records, as_text
from shared.errors import InputError
from shared.processing import Processing
from shared.rows import FLOAT32_MAX


class SparseFile(io.RawIOBase):
    """A file of ``size`` bytes of which only some ranges were fetched (the footer and
    a chunk's row groups); pyarrow reads through it as through any file."""

    def __init__(self, size: int, ranges: dict[int, bytes]) -> None:
        self._size, self._pos = size, 0
        # Overlapping or touching ranges are merged, so a read across them is whole.
        self._ranges: list[tuple[int, bytes]] = []
        for start, data in sorted(ranges.items()):
            if self._ranges and start <= self._ranges[-1][0] + len(self._ranges[-1][1]):
                first, held = self._ranges[-1]
                self._ranges[-1] = (first, held + data[first + len(held) - start :])
            else:
                self._ranges.append((start, data))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self._size if size < 0 else min(self._size, self._pos + size)
        for start, data in self._ranges:
            if start <= self._pos < start + len(data):
                # pyarrow reads ahead in blocks: a read past the fetched range is
                # answered short, with what is there.
                piece = data[self._pos - start : end - start]
                self._pos += len(piece)
                return piece
        raise OSError(f"bytes {self._pos}-{end} were not fetched")

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    )


def read_parquet_records(
    source: SparseFile, processing: Processing, *, first: int, count: int, uri: str
) -> Records:
    """The rows of row groups ``first .. first + count - 1``; numbers are checked as
    float32 (finite, in range, present), naming the row group and row of a bad one."""
    parquet = pq.ParquetFile(source)
    table = parquet.read_row_groups(list(range(first, first + count)), use_threads=False)
    rows = table.num_rows
    group_rows = [parquet.metadata.row_group(g).num_rows for g in range(first, first + count)]
    starts = np.concatenate(([0], np.cumsum(group_rows)))
    names = processing.input_names()
    values = np.empty((rows, len(processing.features)), dtype=np.float64)
    bad = np.zeros(rows, dtype=bool)
    why: dict[int, str] = {}
    for out, position in enumerate(processing.features):
        column = table.column(position).combine_chunks()
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        if not _numeric(column.type):
            # Ingest refuses these from the footer; a plan made before it did stops here.
            raise InputError(
                uri,
                f"column {names[position]!r} is a feature but holds {column.type}, not "
                "numbers; choose the features with byom-input-filter",
            )
        numbers = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        values[:, out] = numbers
        wrong = nulls | ~(np.abs(np.nan_to_num(numbers, nan=np.inf)) <= FLOAT32_MAX)
        for found in np.flatnonzero(wrong & ~bad):
            value = float(numbers[found])
            what = "is null" if nulls[found] else f"is {value!r}, not a finite float32"
            why[int(found)] = f"column {names[position]!r} {what}"
        bad |= wrong
    rejected: dict[int, InputError] = {}
    for row, reason in sorted(why.items()):
        group = int(np.searchsorted(starts, row, side="right") - 1)
        rejected[row] = InputError(
            uri, f"row group {first + group}, row {row - int(starts[group])}: {reason}"
        )
    good = np.flatnonzero(~bad)
    take = pa.array(good)
    typed = [table.column(i).combine_chunks().take(take) for i in range(table.num_columns)]
    return Records(
        rows=rows,
        values=values[good].astype(np.float32),
        good=good,
        columns=[as_text(column) for column in typed],
        rejected=rejected,
        typed=typed,
    )
