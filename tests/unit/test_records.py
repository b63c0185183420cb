"""A real file's chunk: records read once, features checked by the one grammar, output joined."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inference_worker.parquet_records import SparseFile, read_parquet_records
from services.inference_worker.processed import format_output
from services.inference_worker.records import read_line_records
from shared.csvchunks import ReadRange
from shared.processing import Format, Processing
from shared.schemas import Chunk, ChunkPlan

URI = "s3://b/input/f.csv"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def plan_for(processing: Processing) -> ChunkPlan:
    return ChunkPlan.model_validate(dict(
        job_id="job-1", bucket="b", key="k", etag="e", size=10, header=True,
        chunks=(Chunk(index=0, start=0, end=10),), processing=processing,
        model_name="fraud", model_version="3",
    ))  # fmt: skip


CSV = Processing(
    content=Format.CSV, accept=Format.CSV, width=5,
    names=("id", "a", "b", "c", "label"), features=(1, 2, 3), join=True, header=True,
)  # fmt: skip


def test_csv_rows_keep_their_line_and_bad_ones_are_named_in_the_files_columns() -> None:
    data = b'x1,1,2,3,0\nx2,4,5,6,1\r\n"x,3",7,8,9,1\nx4,1,2\nx5,1,zz,3,0\n'
    records = read_line_records(data, CSV, uri=URI)
    assert records.rows == 5 and list(records.good) == [0, 1, 2]
    np.testing.assert_array_equal(records.values, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    problems = {i: p.describe() for i, p in records.rejected.items()}
    assert problems == {
        3: f"{URI}, line 4, column 4: expected 5 columns, found 3",
        4: f"{URI}, line 5, column 3: 'zz' is not a number",
    }
    output = format_output(
        CSV, plan_for(CSV), plan_for(CSV).chunks[0], records, b"0.1\n0.9\n0.5\n", NOW
    )
    assert output.decode().split("\n") == [
        "id,a,b,c,label,prediction",
        "x1,1,2,3,0,0.1",
        "x2,4,5,6,1,0.9",  # the uploaded line, its \r\n ending made \n
        '"x,3",7,8,9,1,0.5',
        "",  # rejected rows keep their place
        "",
        "",
    ]


def test_output_filter_threshold_and_metadata_columns() -> None:
    processing = CSV.model_copy(
        update={
            "output_filter": "$[0,-4:]",
            "threshold": 0.5,
            "metadata": ("job_id", "model_name", "scored_at"),
        }
    )
    records = read_line_records(b"x1,1,2,3,0\nx2,4,5,6,1\n", processing, uri=URI)
    chunk = plan_for(processing).chunks[0]
    output = format_output(processing, plan_for(processing), chunk, records, b"0.25\n0.75\n", NOW)
    assert output.decode().splitlines() == [
        "id,predicted_label,byom_job_id,byom_model_name,byom_scored_at",
        "x1,0,job-1,fraud,2026-01-02T03:04:05.000000Z",
        "x2,1,job-1,fraud,2026-01-02T03:04:05.000000Z",
    ]


def test_json_lines_objects_get_the_prediction_under_sagemakeroutput() -> None:
    processing = Processing(
        content=Format.JSONL, accept=Format.JSONL, records="objects", width=3,
        names=("id", "a", "b"), features=(1, 2), feature_names=("a", "b"), join=True,
    )  # fmt: skip
    data = (
        b'{"id":"q","a":1,"b":2}\n{"id":"r","a":1.5,"b":null}\n'
        b'{"b":4, "a":3,"id":"s" }\n{}\n{"id":"t","a":1,"b":"abc"}\nnot json\n'
    )
    records = read_line_records(data, processing, uri=URI)
    np.testing.assert_array_equal(records.values, [[1, 2], [3, 4]])
    problems = {i: p.describe() for i, p in records.rejected.items()}
    assert (
        problems[1] == f"{URI}, line 2, column 2: key 'b' is missing or null; a number is required"
    )
    assert problems[4] == f"{URI}, line 5, column 2: key 'b': 'abc' is not a number"
    assert problems[5].startswith(f"{URI}, line 6: is not a JSON record")
    chunk = plan_for(processing).chunks[0]
    output = format_output(processing, plan_for(processing), chunk, records, b"0.25\n0.75\n", NOW)
    lines = output.decode().split("\n")
    assert json.loads(lines[0]) == {"id": "q", "a": 1, "b": 2, "SageMakerOutput": 0.25}
    assert json.loads(lines[2]) == {"b": 4, "a": 3, "id": "s", "SageMakerOutput": 0.75}
    assert lines[1] == lines[3] == lines[4] == lines[5] == "" and len(lines) == 7


def test_json_lines_arrays_are_wrapped_as_sagemaker_does() -> None:
    processing = Processing(
        content=Format.JSONL, accept=Format.JSONL, records="arrays", width=3,
        features=(1, 2), join=True,
    )  # fmt: skip
    records = read_line_records(b'["q",1,2]\n["r",3,4]\n', processing, uri=URI)
    chunk = plan_for(processing).chunks[0]
    output = format_output(processing, plan_for(processing), chunk, records, b"0.25\n0.75\n", NOW)
    assert [json.loads(line) for line in output.splitlines()] == [
        {"SageMakerInput": ["q", 1, 2], "SageMakerOutput": 0.25},
        {"SageMakerInput": ["r", 3, 4], "SageMakerOutput": 0.75},
    ]


def test_parquet_rows_are_read_from_fetched_ranges_and_bad_ones_named_by_row_group() -> None:
    x = np.arange(30, dtype=np.float64)
    x[17] = np.inf
    y = pa.array([None if i == 25 else float(i) for i in range(30)], pa.float64())
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(30)], "x": x, "y": y}), buffer,
                   row_group_size=10)  # fmt: skip
    data = buffer.getvalue()
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    start = metadata.row_group(1).column(0).dictionary_page_offset or 4
    tail = max(0, len(data) - 64 * 1024)
    source = SparseFile(len(data), {0: b"PAR1", start: data[start:], tail: data[tail:]})
    processing = Processing(
        content=Format.PARQUET, accept=Format.CSV, width=3, names=("id", "x", "y"),
        features=(1, 2), join=True,
    )  # fmt: skip
    records = read_parquet_records(source, processing, first=1, count=2, uri=URI)
    assert records.rows == 20 and len(records.values) == 18
    problems = [p.describe() for p in records.rejected.values()]
    assert problems == [
        f"{URI}: row group 1, row 7: column 'x' is inf, not a finite float32",
        f"{URI}: row group 2, row 5: column 'y' is null",
    ]


def reader(data: bytes) -> ReadRange:
    return lambda start, end: data[start:end]


def test_parquet_parts_become_one_file_without_pyarrow() -> None:
    from shared.parquet_concat import joined_footer, read_part_footer
    from shared.parquet_footer import MAGIC
    from shared.thrift_compact import encode

    processing = Processing(
        content=Format.CSV, accept=Format.PARQUET, width=2, names=("id", "x"),
        features=(1,), join=True, metadata=("job_id",),
    )  # fmt: skip
    plan = plan_for(processing)
    parts = []
    for chunk, data, answer in [
        (0, b"a,1\nb,zz\nc,3\n", b"0.5\n0.25\n"),
        (1, b"d,x\n", b""),  # every record rejected: a part of nulls, the same schema
        (2, b"e,5\n", b"0.125\n"),
    ]:
        records = read_line_records(data, processing, uri=URI)
        parts.append(
            format_output(
                processing, plan, Chunk(index=chunk, start=0, end=1), records, answer, NOW
            )
        )
    start, footer = read_part_footer(reader(parts[0]), len(parts[0]))
    assert encode(footer) == parts[0][start:-8]  # read and written back losslessly
    output, placed = bytearray(MAGIC), []
    for part in parts:
        start, footer = read_part_footer(reader(part), len(part))
        placed.append((footer, len(output)))
        output += part[4:start]
    output += joined_footer(placed)
    table = pq.read_table(io.BytesIO(bytes(output)))
    assert table.column_names == ["id", "x", "prediction", "byom_job_id"]
    assert table.column("id").to_pylist() == ["a", None, "c", None, "e"]
    assert table.column("prediction").to_pylist() == [0.5, None, 0.25, None, 0.125]
    assert table.column("byom_job_id").to_pylist() == ["job-1", None, "job-1", None, "job-1"]


def test_an_array_of_features_under_one_key_as_sagemakers_dollar_features() -> None:
    from services.ingest.processing_plan import first_record, processing, requested

    request = requested(URI, "input/f.jsonl", "", {"byom-input-filter": "$.features"}, None)
    first = b'{"id": "a", "features": [1, 2, 3]}'
    record = first_record(request, None, first, URI, 1)
    planned = processing(request, None, record, model_columns=3, uri=URI)
    assert planned.feature_names == ("features",) and planned.feature_widths == (3,)
    data = first + b'\n{"id": "b", "features": [4, 5]}\n{"id": "c", "features": [7, 8, 9]}\n'
    records = read_line_records(data, planned, uri=URI)
    np.testing.assert_array_equal(records.values, [[1, 2, 3], [7, 8, 9]])
    assert (
        "line 2, column 1: key 'features' holds 2 values; expected 3"
        in records.rejected[1].describe()
    )


def test_csv_rows_without_a_join_become_json_lines_records() -> None:
    processing = CSV.model_copy(
        update={"accept": Format.JSONL, "join": False, "header": False, "metadata": ("job_id",)}
    )
    records = read_line_records(b"x1,1,2,3,0\nx2,4,5,6,1\n", processing, uri=URI)
    chunk = plan_for(processing).chunks[0]
    output = format_output(processing, plan_for(processing), chunk, records, b"0.25\n1e-05\n", NOW)
    assert [json.loads(line) for line in output.splitlines()] == [
        {"SageMakerOutput": 0.25, "byom_job_id": "job-1"},
        {"SageMakerOutput": 1e-05, "byom_job_id": "job-1"},
    ]


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@given(
    st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=20),
    st.lists(st.integers(1, 4), min_size=1, max_size=6),
)
def test_selected_columns_are_the_rows_own_numbers(
    rows: list[list[float]], picks: list[int]
) -> None:
    """Whatever the selection (in any order, repeats too), the model gets exactly
    those cells of each row, as float32; the id column is never among them here."""
    data = b"".join(
        b"id-%d,%s\n" % (i, ",".join(repr(v) for v in row).encode()) for i, row in enumerate(rows)
    )
    positions = tuple(picks)
    processing = Processing(
        content=Format.CSV, accept=Format.CSV, width=5, features=positions, join=True
    )
    records = read_line_records(data, processing, uri=URI)
    assert not records.rejected and records.rows == len(rows)
    table = np.array([[0.0, *row] for row in rows], dtype=np.float32)
    np.testing.assert_array_equal(records.values, table[:, list(positions)])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"7", "line 2, column 1: key 'features' holds no array; expected 3"),
        (b'"abc"', "line 2, column 1: key 'features' holds no array; expected 3"),
        (b'[1,"x",3]', "line 2, column 2: key 'features[1]': 'x' is not a number"),
    ],
)
def test_a_malformed_record_among_array_features_is_one_bad_row(value: bytes, problem: str) -> None:
    """A record whose ``$.features`` is not an array of numbers sends the chunk to the
    record-by-record reader; it must stay one bad row named by line and key."""
    from services.ingest.processing_plan import first_record, processing, requested

    metadata = {"byom-input-filter": "$.features", "byom-on-bad-rows": "skip"}
    request = requested(URI, "input/f.jsonl", "", metadata, None)
    first = b'{"id": "a", "features": [1, 2, 3]}'
    planned = processing(
        request, None, first_record(request, None, first, URI, 1), model_columns=3, uri=URI
    )
    second = b'{"id": "b", "features": ' + value + b"}"
    data = first + b"\n" + second + b'\n{"id": "c", "features": [7, 8, 9]}\n'
    records = read_line_records(data, planned, uri=URI)
    np.testing.assert_array_equal(records.values, [[1, 2, 3], [7, 8, 9]])
    assert list(records.good) == [0, 2]
    assert {i: p.describe() for i, p in records.rejected.items()} == {1: f"{URI}, {problem}"}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'x1,"1,5",2,3,0', "line 1, column 2: '1,5' is not a number"),
        (b'x1,1,2,"3,4",0', "line 1, column 4: '3,4' is not a number"),
    ],
)
def test_a_quoted_feature_cell_holding_a_comma_is_one_bad_row(line: bytes, problem: str) -> None:
    records = read_line_records(line + b"\nx2,4,5,6,1\n", CSV, uri=URI)
    np.testing.assert_array_equal(records.values, [[4, 5, 6]])
    assert {i: p.describe() for i, p in records.rejected.items()} == {0: f"{URI}, {problem}"}


def test_csv_output_filter_on_a_chunk_with_no_good_rows_keeps_each_line_in_place() -> None:
    processing = Processing(
        content=Format.CSV, accept=Format.CSV, width=3, features=(0, 1, 2), join=True,
        output_filter="$[0,-1]",
    )  # fmt: skip
    plan = plan_for(processing)
    records = read_line_records(b"7,x,2\n", processing, uri=URI)
    assert not len(records.good)
    assert format_output(processing, plan, plan.chunks[0], records, b"", NOW) == b"\n"
    records = read_line_records(b"7,x,2\n1,2,3\n", processing, uri=URI)
    assert format_output(processing, plan, plan.chunks[0], records, b"0.5\n", NOW) == b"\n1,0.5\n"


def test_parquet_output_of_a_multi_class_model_keeps_its_class_names_as_text() -> None:
    processing = Processing(
        content=Format.CSV, accept=Format.PARQUET, width=2, features=(0, 1), join=False,
        prediction_names=("probability", "label"), classes=("cat", "dog", "eel"),
    )  # fmt: skip
    plan = plan_for(processing)
    records = read_line_records(b"1,2\n3,4\n", processing, uri=URI)
    answer = b"0.1,0.2,0.7,eel\n0.6,0.3,0.1,cat\n"
    output = format_output(processing, plan, plan.chunks[0], records, answer, NOW)
    table = pq.read_table(io.BytesIO(output))
    columns = table.columns
    assert [c.to_pylist() for c in columns[:3]] == [[0.1, 0.6], [0.2, 0.3], [0.7, 0.1]]
    assert columns[3].to_pylist() == ["eel", "cat"]
