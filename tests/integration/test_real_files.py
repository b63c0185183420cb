"""Real files through the real local stack: filters, joins, headers, JSON Lines, Parquet.

One model is published with a manifest that names its 30 features and caps a
request at 50 rows; uploads carry an id column and the label beside the
features and choose what to do with S3 metadata, as SageMaker Batch Transform's
DataProcessing does. Every upload is one job of several chunks through Batch.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import FEATURES, LABEL, generate
from model.publish import publish
from tests.integration.helpers import collect_done_events

pytestmark = pytest.mark.integration

KIB = 1024
ROWS = 300
MODEL = "named"


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        # Small chunks: every upload is scored in several, the header in the first.
        settings={"BYOM_CHUNK_BYTES": str(32 * KIB)},
    )
    with LocalStack(config) as stack:
        package = tmp_path_factory.mktemp("named-model")
        shutil.copy(model_dir / "xgboost-model.json", package / "xgboost-model.json")
        names = ", ".join(f'"{name}"' for name in FEATURES)
        (package / "byom.toml").write_text(
            f"[input]\ncolumns = [{names}]\n\n[batch]\nmax_rows = 50\n"
        )
        publish(package, MODEL, "1", bucket=config.bucket, s3=stack.client("s3"))
        yield stack


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = generate(ROWS, seed=41, fraud_rate=0.05)
    data.insert(0, "id", [f"txn-{i:04d}" for i in range(ROWS)])
    return data.loc[:, ["id", *FEATURES, LABEL]]


@pytest.fixture(scope="module")
def expected(model_dir, frame) -> np.ndarray:
    booster = xgboost.Booster()
    booster.load_model(str(model_dir / "xgboost-model.json"))
    features = frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    return np.asarray(booster.inplace_predict(features, validate_features=False))


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, lineterminator="\n").encode()


def jsonl_of(frame: pd.DataFrame) -> bytes:
    return frame.to_json(orient="records", lines=True, double_precision=15).encode()


def parquet_of(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=40)
    return buffer.getvalue()


def output_of(stack: LocalStack, detail: dict[str, str]) -> bytes:
    bucket = stack.config.bucket
    key = detail["output_uri"].removeprefix(f"s3://{bucket}/")
    body: bytes = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_real_files(stack, frame, expected):
    s3, sqs = stack.client("s3"), stack.client("sqs")
    bucket = stack.config.bucket
    done_queue = stack.subscribe_done_events("real-files-done")
    card = json.loads(
        s3.get_object(Bucket=bucket, Key=f"models/{MODEL}/1/card.json")["Body"].read()
    )
    assert card["feature_names"] == list(FEATURES) and card["max_rows"] == 50

    shuffled_features = list(np.random.default_rng(5).permutation(FEATURES))
    shuffled = frame.loc[:, ["id", *shuffled_features, LABEL]]
    missing = frame.drop(columns=["V7"])
    skipped = csv_of(frame.head(20)).split(b"\n")
    skipped[6] = skipped[6].replace(b",", b",oops,", 1)  # line 7: one cell too many
    skipped[9] = skipped[9].replace(b",", b",x", 2).replace(b",x", b",", 1)  # line 10, column 3
    bad_jsonl = jsonl_of(frame.head(5)).split(b"\n")
    bad_jsonl[2] = bad_jsonl[2].replace(b'"V2":', b'"V2":"abc","was":', 1)
    chosen = {"byom-model": MODEL}
    uploads = {
        "input/rows.csv": (
            csv_of(frame),
            {**chosen, "byom-input-filter": "$[1:-1]", "byom-join-source": "Input"},
        ),
        "input/rows.jsonl": (jsonl_of(frame), {**chosen, "byom-join-source": "Input"}),
        "input/rows.parquet": (
            parquet_of(frame),
            {
                **chosen,
                "byom-join-source": "Input",
                "byom-output-filter": "$['id',-1]",
                "byom-accept": "text/csv",
            },
        ),
        "input/joined-rows.parquet": (parquet_of(frame), {**chosen, "byom-join-source": "Input"}),
        "input/shuffled.csv": (
            csv_of(shuffled),
            {
                **chosen,
                "byom-join-source": "Input",
                "byom-output-filter": "$[0,-3:]",
                "byom-threshold": "0.5",
                "byom-metadata": "job_id",
            },
        ),
        "input/skip-rows.csv": (
            b"\n".join(skipped),
            {**chosen, "byom-join-source": "Input", "byom-on-bad-rows": "skip"},
        ),
        "input/missing.csv": (csv_of(missing), chosen),
        "input/bad-filter.csv": (csv_of(frame), {**chosen, "byom-input-filter": "$[1:x]"}),
        "input/bad.jsonl": (b"\n".join(bad_jsonl), chosen),
    }
    for key, (body, metadata) in uploads.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    uris = {f"s3://{bucket}/{key}" for key in uploads}
    try:
        details = collect_done_events(sqs, done_queue, uris, timeout=240)
    except TimeoutError:
        print(stack.logs())
        raise

    def done(key: str) -> dict[str, str]:
        detail = details[f"s3://{bucket}/{key}"]
        if detail["status"] != "SUCCEEDED":
            print(stack.logs())
        assert detail["status"] == "SUCCEEDED", (key, detail["error"])
        return detail

    # CSV: the header carried, every input line as uploaded, then the probability.
    detail = done("input/rows.csv")
    assert int(detail["chunks"]) > 1 and int(detail["rows"]) == ROWS
    lines = output_of(stack, detail).decode().splitlines()
    uploaded = csv_of(frame).decode().splitlines()
    assert lines[0] == uploaded[0] + ",probability"
    assert len(lines) == ROWS + 1
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == uploaded[1:]
    scores = np.array([line.rsplit(",", 1)[1] for line in lines[1:]], dtype=np.float64)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)

    # JSON Lines: each record with its prediction under SageMakerOutput.
    detail = done("input/rows.jsonl")
    assert detail["output_uri"].endswith(".jsonl")
    records = [json.loads(line) for line in output_of(stack, detail).splitlines()]
    assert [r["id"] for r in records] == list(frame["id"])
    assert all(set(r) == {"id", *FEATURES, LABEL, "SageMakerOutput"} for r in records)
    scores = np.array([r["SageMakerOutput"] for r in records], dtype=np.float64)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-6)

    # Parquet: row groups as chunks; the output filter keeps the id and the score.
    detail = done("input/rows.parquet")
    assert int(detail["chunks"]) > 1 and detail["output_uri"].endswith(".csv")
    table = pd.read_csv(io.BytesIO(output_of(stack, detail)))
    assert list(table.columns) == ["id", "probability"]
    assert list(table["id"]) == list(frame["id"])
    np.testing.assert_allclose(table["probability"], expected, rtol=0, atol=1e-6)

    # Parquet in, Parquet out: one file of the chunks' row groups, input types kept.
    detail = done("input/joined-rows.parquet")
    assert int(detail["chunks"]) > 1 and detail["output_uri"].endswith(".parquet")
    scored = pq.ParquetFile(io.BytesIO(output_of(stack, detail)))
    assert scored.metadata.num_row_groups == int(detail["chunks"])  # a row group per chunk
    table = scored.read()
    assert table.column_names == ["id", *FEATURES, LABEL, "probability"]
    assert table.schema.field("V1").type == pa.float64()
    assert table.column("id").to_pylist() == list(frame["id"])
    np.testing.assert_allclose(table.column("probability"), expected, rtol=0, atol=1e-6)

    # A header in another order is read by name; a label and the job id are added.
    detail = done("input/shuffled.csv")
    table = pd.read_csv(io.BytesIO(output_of(stack, detail)))
    assert list(table.columns) == ["id", "probability", "predicted_label", "byom_job_id"]
    np.testing.assert_allclose(table["probability"], expected, rtol=0, atol=1e-6)
    assert list(table["predicted_label"]) == [int(p >= 0.5) for p in table["probability"]]
    assert set(table["byom_job_id"]) == {detail["job_id"]}

    # Skipped rows keep their place as empty lines and are listed with line and column.
    detail = done("input/skip-rows.csv")
    assert int(detail["bad_rows"]) == 2
    lines = output_of(stack, detail).decode().split("\n")
    assert len(lines) == 20 + 2 and lines[-1] == ""  # the header, 20 rows, a final newline
    assert lines[6] == lines[9] == ""
    assert lines[7] == skipped[7].decode() + "," + lines[7].rsplit(",", 1)[1]
    report = (
        stack.client("s3")
        .get_object(Bucket=bucket, Key=detail["errors_uri"].removeprefix(f"s3://{bucket}/"))["Body"]
        .read()
        .decode()
    )
    header, first, second = report.splitlines()
    assert (header, first) == ("line,column,reason", '7,33,"expected 32 columns, found 33"')
    assert second.startswith("10,3,'x") and second.endswith("' is not a number")

    failed = {key: details[f"s3://{bucket}/{key}"] for key in uploads if "rows" not in key}
    failed.pop("input/shuffled.csv")
    assert all(d["status"] == "FAILED" and d["output_uri"] is None for d in failed.values())
    assert "no column 'V7', a feature the model takes" in failed["input/missing.csv"]["error"]
    error = failed["input/bad-filter.csv"]["error"]
    assert "metadata byom-input-filter='$[1:x]': item 1 ('1:x') is not an index" in error
    assert "bad.jsonl, line 3" in failed["input/bad.jsonl"]["error"]
    assert "key 'V2': 'abc' is not a number" in failed["input/bad.jsonl"]["error"]


def test_a_package_published_before_cards_has_none(stack):
    """Ingest falls back to the package's feature-count metadata when there is no card."""
    from shared import model_registry

    s3, bucket = stack.client("s3"), stack.config.bucket
    s3.put_object(
        Bucket=bucket,
        Key="models/older/1/model.tar.gz",
        Body=b"not read here",
        Metadata={model_registry.FEATURE_COUNT_METADATA: "30"},
    )
    older = model_registry.ModelRef("older", "1")
    assert model_registry.card(s3, bucket, "models/", older) is None
    assert model_registry.feature_count(s3, bucket, "models/", older) == 30
    card = model_registry.card(s3, bucket, "models/", model_registry.ModelRef(MODEL, "1"))
    assert card is not None and card.feature_names == FEATURES and card.max_rows == 50
    s3.put_object(Bucket=bucket, Key="models/older/1/card.json", Body=b'{"version": 2}')
    with pytest.raises(ValueError, match="not a valid model card"):
        model_registry.card(s3, bucket, "models/", older)
