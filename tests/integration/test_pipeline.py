"""The whole pipeline as real processes over real sockets: upload in, predictions out."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import xgboost

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item, keys_under

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        settings={"BYOM_CHUNK_BYTES": str(4 * MIB), "BYOM_CHUNKS_PER_CHILD": "3"},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def done_queue(stack):
    return stack.subscribe_done_events("test-done-events")


@pytest.fixture(scope="module")
def clients(stack):
    return {name: stack.client(name) for name in ("s3", "sqs", "dynamodb")}


def feature_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def expected_predictions(model_dir, data: bytes, header: bool = False) -> np.ndarray:
    booster = xgboost.Booster()
    booster.load_model(str(model_dir / "xgboost-model.json"))
    frame = pd.read_csv(io.BytesIO(data), header=0 if header else None, dtype=np.float32)
    return booster.inplace_predict(frame.to_numpy(), validate_features=False)


def test_large_file_end_to_end(stack, done_queue, clients, model_dir):
    s3, bucket = clients["s3"], stack.config.bucket
    data = feature_csv(100_000, seed=11)
    key = "input/large.csv"
    # upload_fileobj goes multipart at this size: S3 sends two ObjectCreated
    # events for it, and byom must still make one job.
    s3.upload_fileobj(io.BytesIO(data), bucket, key)
    uri = f"s3://{bucket}/{key}"
    try:
        detail = collect_done_events(clients["sqs"], done_queue, {uri}, timeout=300)[uri]
    except TimeoutError:
        print(stack.logs())
        raise
    assert detail["status"] == "SUCCEEDED", detail
    output_key = detail["output_uri"].removeprefix(f"s3://{bucket}/")
    body = s3.get_object(Bucket=bucket, Key=output_key)["Body"].read()
    predictions = np.array(body.decode().split(), dtype=np.float64)
    expected = expected_predictions(model_dir, data)
    assert len(predictions) == 100_000 == body.count(b"\n")
    np.testing.assert_allclose(predictions, expected, rtol=0, atol=1e-6)

    item = job_item(clients["dynamodb"], stack.config.jobs_table, detail["job_id"])
    assert item["state"] == "SUCCEEDED"
    assert int(item["rows"]) == 100_000 == detail["rows"]
    assert int(item["chunk_count"]) == int(item["chunks_done"]) == detail["chunks"] > 1
    assert item["batch_job_id"]
    assert item["output_key"] == output_key
    assert [k for k in keys_under(s3, bucket, "output/") if k.endswith("-large.csv")] == [
        output_key
    ]
    # Staging goes just after the done event.
    staging = f"staging/{detail['job_id']}/"
    wait_until(lambda: keys_under(s3, bucket, staging) == [], timeout=30, what="staging removed")


def good_rows(count: int, seed: int) -> bytes:
    return feature_csv(count, seed)


def with_bad_cell(data: bytes, line: int, column: int, value: str) -> bytes:
    lines = data.split(b"\n")
    cells = lines[line - 1].split(b",")
    cells[column - 1] = value.encode()
    lines[line - 1] = b",".join(cells)
    return b"\n".join(lines)


BAD_FILES = {
    "empty.csv": (b"", "the file is empty"),
    "ragged.csv": (
        good_rows(5, 1).replace(b"\n", b",1.5\n", 3).replace(b",1.5\n", b"\n", 2),
        "line 3, column 31: expected 30 columns, found 31",
    ),
    "non-numeric.csv": (with_bad_cell(good_rows(20, 2), 7, 4, "abc"), "line 7, column 4"),
    "wrong-columns.csv": (b"1,2,3\n4,5,6\n", "line 1, column 4: expected 30 columns, found 3"),
    # the bad cell sits far past the head that ingest checks, in a later chunk,
    # so the worker finds it and must still report the file's own line number
    "late-bad.csv": (
        with_bad_cell(good_rows(6000, 3), 5432, 9, "1.2.3"),
        "line 5432, column 9: '1.2.3' is not a number",
    ),
}


def test_invalid_files_fail_with_position_and_good_file_succeeds(stack, done_queue, clients):
    s3, bucket = clients["s3"], stack.config.bucket
    good = good_rows(3000, 4)
    uploads = {f"input/bad/{name}": data for name, (data, _) in BAD_FILES.items()}
    uploads["input/good-neighbour.csv"] = good
    with ThreadPoolExecutor(len(uploads)) as pool:
        list(
            pool.map(
                lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), uploads.items()
            )
        )
    uris = {f"s3://{bucket}/{key}" for key in uploads}
    try:
        details = collect_done_events(clients["sqs"], done_queue, uris, timeout=180)
    except TimeoutError:
        print(stack.logs())
        raise

    good_detail = details[f"s3://{bucket}/input/good-neighbour.csv"]
    assert good_detail["status"] == "SUCCEEDED" and good_detail["rows"] == 3000

    outputs = keys_under(s3, bucket, "output/")
    for name, (_, expected_error) in BAD_FILES.items():
        uri = f"s3://{bucket}/input/bad/{name}"
        detail = details[uri]
        assert detail["status"] == "FAILED", (name, detail)
        assert detail["output_uri"] is None
        assert uri in detail["error"] and expected_error in detail["error"], detail["error"]
        item = job_item(clients["dynamodb"], stack.config.jobs_table, detail["job_id"])
        assert item["state"] == "FAILED" and expected_error in item["error"]
        assert not [k for k in outputs if k.endswith(f"-bad_{name}")], outputs


def test_header_row_is_detected(stack, done_queue, clients, model_dir):
    """A header is skipped for scoring and carried to the output, on the inline path
    (a small file) and through Batch (only the first of several chunks carries it)."""
    s3, bucket = clients["s3"], stack.config.bucket
    uploads = {}
    for name, rows in (("with header.csv", 50), ("big with header.csv", 40_000)):
        buffer = io.StringIO()
        write_feature_csv(generate(rows, seed=5), buffer, header=True)
        data = buffer.getvalue().replace("\n", "\r\n").encode()
        s3.put_object(Bucket=bucket, Key=f"input/{name}", Body=data)
        uploads[f"s3://{bucket}/input/{name}"] = (rows, data)
    assert len(uploads[f"s3://{bucket}/input/big with header.csv"][1]) > 2 * 4 * MIB
    details = collect_done_events(clients["sqs"], done_queue, set(uploads), timeout=180)
    for uri, (rows, data) in uploads.items():
        detail = details[uri]
        assert detail["status"] == "SUCCEEDED", detail
        assert detail["rows"] == rows
        key = detail["output_uri"].split("/", 3)[3]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        # The header is carried: output line n is input line n.
        header, *lines = body.split(b"\n")[:-1]
        assert header == b"prediction"
        assert len(lines) == rows
        predictions = np.array(lines, dtype=np.float64)
        np.testing.assert_allclose(
            predictions, expected_predictions(model_dir, data, header=True), atol=1e-6
        )
