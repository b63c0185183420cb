"""Parquet columns that are not numbers are refused at ingest, by name.

A DATE column is INT32 on disk and a TIMESTAMP INT64: their physical types are
numbers, their logical types are not, and the worker's cast to float64 cannot
take them. Ingest reads the logical type from the footer and refuses them there;
the worker names the column too, for a plan made before ingest did.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.inference_worker.parquet_records import SparseFile, read_parquet_records
from shared.errors import InputError
from shared.processing import Format, Processing

DAY = dt.date(2026, 1, 2)
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5)


def parquet(extra: pa.Array, name: str) -> bytes:
    table = pa.table({"a": np.arange(4, dtype=np.float64), name: extra, "b": np.ones(4)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


COLUMNS = [
    (pa.array([DAY] * 4, pa.date32()), "day"),
    (pa.array([WHEN] * 4, pa.timestamp("ms")), "ms"),
    (pa.array([WHEN] * 4, pa.timestamp("us", tz="UTC")), "us"),
    (pa.array([dt.time(3, 4)] * 4, pa.time32("ms")), "clock"),
]


@pytest.mark.parametrize(("column", "name"), COLUMNS)
def test_ingest_refuses_a_date_or_time_feature_naming_it(column: pa.Array, name: str) -> None:
    from services.ingest.ingest import Upload, plan_job
    from shared.schemas import RowPolicy

    data = parquet(column, name)
    upload = Upload("byom-local", "input/f.parquet", "etag", len(data), {})
    with pytest.raises(InputError) as error:
        plan_job("job", upload, RowPolicy(), read=lambda s, e: data[s:e], columns=3)
    assert f"column {name!r} is a feature but holds" in str(error.value)
    assert "not numbers" in str(error.value)
    # Left out of the features, the same file is planned.
    metadata = {"byom-input-filter": "$[0,2]"}
    upload = Upload("byom-local", "input/f.parquet", "etag", len(data), metadata)
    planned = plan_job("job", upload, RowPolicy(), read=lambda s, e: data[s:e], columns=2)
    assert planned.processing is not None and planned.processing.features == (0, 2)


@pytest.mark.parametrize(("column", "name"), COLUMNS)
def test_the_worker_names_such_a_column_as_bad_input(column: pa.Array, name: str) -> None:
    data = parquet(column, name)
    processing = Processing(
        content=Format.PARQUET, accept=Format.CSV, width=3, names=("a", name, "b"),
        features=(0, 1, 2),
    )  # fmt: skip
    with pytest.raises(InputError, match=f"column {name!r} is a feature but holds"):
        read_parquet_records(
            SparseFile(len(data), {0: data}), processing, first=0, count=1, uri="s3://b/f"
        )


@pytest.mark.parametrize("kind", [pa.int8(), pa.uint16(), pa.uint64(), pa.float32()])
def test_annotated_integers_are_numbers(kind: pa.DataType) -> None:
    from services.ingest.ingest import Upload, plan_job
    from shared.schemas import RowPolicy

    data = parquet(pa.array([1, 2, 3, 4], kind), "count")
    upload = Upload("byom-local", "input/f.parquet", "etag", len(data), {})
    planned = plan_job("job", upload, RowPolicy(), read=lambda s, e: data[s:e], columns=3)
    assert planned.processing is not None and planned.processing.features == (0, 1, 2)
