"""Processing settings: checked once at ingest, from the upload's metadata or the model card."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.manifest import ManifestError, Processing, parse_manifest
from model.publish import PublishError, card_of
from services.inference_worker.scoring import npy_requests
from services.ingest.processing_plan import (
    FirstRecord,
    output_name_key,
    processing,
    requested,
)
from shared.csvchunks import split_records
from shared.errors import InputError
from shared.model_card import ModelCard
from shared.parquet_footer import FooterError, read_footer
from shared.processing import Format, ProcessingDefaults
from shared.schemas import Chunk, ChunkPlan

URI = "s3://b/input/f.csv"


def ask(metadata: dict[str, str], key: str = "input/f.csv", card: ModelCard | None = None):
    return requested(URI, key, "", metadata, card)


def refusal(metadata: dict[str, str], key: str = "input/f.csv", card: ModelCard | None = None):
    with pytest.raises(InputError) as error:
        ask(metadata, key, card)
    return error.value.describe()


def test_no_settings_is_todays_plain_job() -> None:
    request = ask({})
    assert request.plain and request.content is Format.CSV and request.accept is Format.CSV
    assert output_name_key("input/f.csv", request) == "input/f.csv"


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"byom-input-filter": "$[1:x]"}, "metadata byom-input-filter='$[1:x]'"),
        ({"byom-output-filter": "0,1"}, "metadata byom-output-filter='0,1'"),
        ({"byom-join-source": "Output"}, "metadata byom-join-source='Output': use 'Input'"),
        ({"byom-accept": "text/xml"}, "metadata byom-accept='text/xml': use one of text/csv"),
        ({"byom-content-type": "image/png"}, "metadata byom-content-type='image/png'"),
        ({"byom-metadata": "job_id,owner"}, "metadata byom-metadata: 'owner'; use any of job_id"),
        ({"byom-threshold": "1.5"}, "metadata byom-threshold='1.5': use a number from 0 to 1"),
        ({"byom-threshold": "model"}, "the model's manifest has no output.threshold"),
        ({"byom-output-key": 'a"b'}, "metadata byom-output-key="),
    ],
)
def test_a_bad_setting_names_itself_and_what_is_allowed(
    metadata: dict[str, str], named: str
) -> None:
    assert named in refusal(metadata)


def test_settings_that_cannot_go_together() -> None:
    jsonl = {"byom-accept": "application/jsonlines"}
    assert "output filters apply to CSV output" in refusal({**jsonl, "byom-output-filter": "$[0]"})
    assert "joins keep the input's format" in refusal({**jsonl, "byom-join-source": "Input"})


def test_formats_from_the_extension_content_type_or_setting() -> None:
    assert ask({}, "input/a.jsonl").content is Format.JSONL
    assert ask({}, "input/a.parquet").content is Format.PARQUET
    assert ask({}, "input/a.parquet").accept is Format.PARQUET  # the output follows the input
    to_csv = ask({"byom-accept": "text/csv"}, "input/a.parquet")
    assert output_name_key("input/a.parquet", to_csv) == "input/a.csv"
    assert requested(URI, "input/a", "application/jsonlines", {}, None).content is Format.JSONL
    assert ask({"byom-content-type": "application/jsonlines"}).content is Format.JSONL
    to_jsonl = ask({}, "input/a.jsonl")
    assert output_name_key("input/a.jsonl", to_jsonl) == "input/a.jsonl"
    assert output_name_key("input/a.parquet", ask({}, "input/a.parquet")) == "input/a.parquet"
    to_parquet = ask({"byom-accept": "application/x-parquet"})
    assert output_name_key("input/f.csv", to_parquet) == "input/f.parquet"


def test_the_upload_wins_over_the_cards_defaults() -> None:
    card = ModelCard(
        processing=ProcessingDefaults(input_filter="$[1:]", join_source="Input"), threshold=0.7
    )
    request = ask({"byom-input-filter": "$[2:]", "byom-threshold": "model"}, card=card)
    assert request.input_filter is not None and request.input_filter.text == "$[2:]"
    assert request.join and request.threshold == 0.7 and request.asked
    assert "the model card's processing.input_filter" in refusal(
        {}, card=ModelCard(processing=ProcessingDefaults(input_filter="$[a"))
    )


def test_a_threshold_on_a_model_of_several_columns_fails_at_ingest() -> None:
    card = ModelCard(output_columns=("probability", "label"), threshold=0.5)
    for value in ("model", "0.7"):
        error = refusal({"byom-threshold": value}, card=card)
        assert f"metadata byom-threshold='{value}'" in error
        assert "answers 2 columns (probability, label)" in error


def test_features_by_name_from_the_card_in_the_files_order() -> None:
    card = ModelCard(feature_count=3, feature_names=("a", "b", "c"))
    record = FirstRecord("rows", 5, ("id", "c", "a", "b", "label"))
    planned = processing(ask({}, card=card), card, record, model_columns=3, uri=URI)
    assert planned.features == (2, 3, 1)
    missing = FirstRecord("rows", 3, ("id", "a", "c"))
    with pytest.raises(InputError) as error:
        processing(ask({}, card=card), card, missing, model_columns=3, uri=URI)
    assert "no column 'b', a feature the model takes" in error.value.describe()


def test_a_filter_must_select_the_models_width() -> None:
    record = FirstRecord("rows", 5, None)
    planned = processing(
        ask({"byom-input-filter": "$[1:-1]"}), None, record, model_columns=3, uri=URI
    )
    assert planned.features == (1, 2, 3)
    with pytest.raises(InputError) as error:
        processing(ask({"byom-input-filter": "$[1:]"}), None, record, model_columns=3, uri=URI)
    assert "byom-input-filter='$[1:]' selects 4 columns; the model takes 3" in str(error.value)
    with pytest.raises(InputError) as error:
        processing(
            ask({"byom-output-filter": "$[9]", "byom-join-source": "Input"}),
            None,
            FirstRecord("rows", 3, None),
            model_columns=3,
            uri=URI,
        )
    assert "byom-output-filter='$[9]': index 9 is outside a row of 4 columns" in str(error.value)


def test_the_manifests_processing_table_is_checked_and_goes_on_the_card() -> None:
    manifest = parse_manifest(
        {
            "input": {"columns": ["id", "a", "b"], "drop": ["id"]},
            "batch": {"max_rows": 10, "max_bytes": 4096},
            "processing": {"input_filter": "$[1:]", "join_source": "Input"},
        }
    )
    card = card_of(manifest, "xgboost", 3)
    assert card.feature_names == ("id", "a", "b") and card.drop == ("id",)
    assert (card.max_rows, card.max_bytes) == (10, 4096)
    assert card.processing.as_metadata() == {
        "byom-input-filter": "$[1:]",
        "byom-join-source": "Input",
    }
    assert ModelCard.model_validate_json(card.model_dump_json()) == card
    with pytest.raises(ManifestError) as error:
        parse_manifest({"processing": {"join": "Input"}}, Path("byom.toml"))
    assert "processing.join: unknown key" in str(error.value)
    for bad, why in [
        ({"input_filter": "$[x]"}, "byom.toml processing.input_filter='$[x]': item 1"),
        ({"accept": "text/xml"}, "byom.toml processing.accept='text/xml': use one of"),
    ]:
        with pytest.raises(PublishError) as refused:
            card_of(parse_manifest({"processing": bad}), "xgboost", 3)
        assert why in str(refused.value)
    # The manifest's table and the card's defaults have the same keys.
    assert set(Processing.model_fields) == set(ProcessingDefaults.model_fields)


def plan(**limits: int) -> ChunkPlan:
    return ChunkPlan.model_validate(dict(
        job_id="j", bucket="b", key="k", etag="e", size=10, header=False,
        chunks=(Chunk(index=0, start=0, end=10),), **limits,
    ))  # fmt: skip


def test_workers_size_requests_to_the_models_limits() -> None:
    assert plan().request_limits(2_000_000) == (2_000_000, None)
    assert plan(max_request_bytes=4096, max_request_rows=7).request_limits(2_000_000) == (
        4096,
        7,
    )
    assert plan(max_request_bytes=9_000_000).request_limits(2_000_000) == (2_000_000, None)
    values = np.zeros((100, 3), dtype=np.float32)
    bodies = npy_requests(values, 2_000_000, max_rows=7)
    sizes = [len(np.load(io.BytesIO(b))) for b in bodies]
    assert max(sizes) == 7 and sum(sizes) == 100
    text = b"".join(b"%d,1\n" % i for i in range(23))
    pieces = split_records(text, 1_000_000, max_rows=5)
    assert [p.count(b"\n") for p in pieces] == [5, 5, 5, 5, 3] and b"".join(pieces) == text
    assert max(len(p) for p in split_records(text, 20, max_rows=5)) <= 20


def test_the_parquet_footer_is_read_without_pyarrow() -> None:
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(250)],
            "x": np.arange(250, dtype=np.float64),
            "n": np.arange(250, dtype=np.int32),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=100)
    data = buffer.getvalue()
    footer = read_footer(lambda start, end: data[start:end], len(data))
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert footer.rows == 250 and footer.columns == ("id", "x", "n") and not footer.nested
    assert [g.rows for g in footer.row_groups] == [100, 100, 50]
    for index, group in enumerate(footer.row_groups):
        columns = [metadata.row_group(index).column(j) for j in range(3)]
        starts = [c.dictionary_page_offset or c.data_page_offset for c in columns]
        assert group.start == min(starts)
        assert group.end == max(
            s + c.total_compressed_size for s, c in zip(starts, columns, strict=True)
        )
    assert footer.start == len(data) - 8 - metadata.serialized_size
    with pytest.raises(FooterError):
        read_footer(lambda start, end: b"x" * (end - start), 100)


def plan_of(data: bytes, key: str, metadata: dict[str, str], reads: list[tuple[int, int]]):
    from services.ingest.ingest import Upload, plan_job
    from shared.schemas import RowPolicy

    def read(start: int, end: int) -> bytes:
        reads.append((start, end))
        return data[start:end]

    upload = Upload("byom-local", key, "etag", len(data), metadata)
    return plan_job("job", upload, RowPolicy(), read=read, columns=3)


def test_a_plain_csv_has_no_processing_and_settings_make_one() -> None:
    rows = b"1,2,3\n4,5,6\n"
    assert plan_of(rows, "input/f.csv", {}, []).processing is None
    wide = b"id,a,b,c,label\nx,1,2,3,0\n"
    planned = plan_of(wide, "input/f.csv", {"byom-input-filter": "$[1:-1]"}, []).processing
    assert planned is not None and planned.features == (1, 2, 3)
    assert planned.names == ("id", "a", "b", "c", "label") and planned.header
    jsonl = b'{"id": "x", "a": 1, "b": 2, "c": 3}\n'
    planned = plan_of(jsonl, "input/f.jsonl", {"byom-input-filter": "$['a','b','c']"}, [])
    assert planned.processing is not None and planned.processing.records == "objects"
    assert planned.processing.feature_names == ("a", "b", "c")


def test_parquet_row_groups_become_chunks_from_the_footer_alone() -> None:
    table = pa.table({"id": [f"r{i}" for i in range(1000)]} | {
        name: np.arange(1000, dtype=np.float64) for name in ("a", "b", "c")
    })  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=100)
    data = buffer.getvalue()
    reads: list[tuple[int, int]] = []
    planned = plan_of(data, "input/f.parquet", {"byom-input-filter": "$[1:]"}, reads)
    layout = planned.processing.parquet if planned.processing else None
    assert layout is not None and sum(span.rows for span in layout.spans) == 1000
    assert [c.index for c in planned.chunks] == list(range(len(layout.spans)))
    # the head, the footer's length and the footer: never the row groups' bytes
    assert len(reads) <= 3
    assert sum(end - start for start, end in reads) <= 64 * 1024 + (len(data) - layout.footer_start)
    with pytest.raises(InputError) as error:
        plan_of(data, "input/f.parquet", {}, [])
    assert "the records have 4 columns; the model takes 3" in str(error.value)
    with pytest.raises(InputError) as error:
        plan_of(data, "input/f.parquet", {"byom-input-filter": "$[0:3]"}, [])
    assert "column 'id' is a feature but holds BYTE_ARRAY" in str(error.value)


def test_an_error_in_a_cards_default_names_the_card() -> None:
    card = ModelCard(processing=ProcessingDefaults(input_filter="$[1:]"))
    with pytest.raises(InputError) as error:
        processing(ask({}, card=card), card, FirstRecord("rows", 5, None), model_columns=3, uri=URI)
    assert "the model card's processing.input_filter='$[1:]' selects 4 columns" in str(error.value)
