"""The bad-input corpus, end to end: every file ends in the state it should, saying where.

Small cases live in tests/corpus (expected.json says how each must end); large
ones are made here: a 1 GB file, a single 100 MB line, a decompression bomb,
and keys that are awkward to name. A good file uploaded at the same time must
still succeed.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import collect_done_events, job_item, keys_under, with_cell

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
MIB = 1024 * 1024
LIMIT = 512 * MIB


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("bad-input-logs"),
        settings={"BYOM_MAX_FILE_BYTES": str(LIMIT), "BYOM_CHUNK_BYTES": str(MIB)},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def aws(stack):
    clients = {name: stack.client(name) for name in ("s3", "sqs", "dynamodb")}
    clients["done"] = stack.subscribe_done_events("bad-input-done-events")
    return clients


def good_csv(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


def upload_huge(s3, bucket: str, key: str, size: int) -> None:
    """A file of ``size`` bytes, assembled server-side from one 8 MiB part."""
    part = (b"1," * 29 + b"1\n") * (8 * MIB // 60)
    s3.put_object(Bucket=bucket, Key="seed/part.csv", Body=part)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number in range(1, size // len(part) + 2):
        copied = s3.upload_part_copy(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "seed/part.csv"},
        )  # fmt: skip
        parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def bomb(inflated: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0," * (MIB // 2)
    out = [compressor.compress(block) for _ in range(inflated // len(block))]
    return b"".join(out) + compressor.flush()


def test_bad_input_corpus(stack, aws):
    s3, bucket = aws["s3"], stack.config.bucket
    uploads: dict[str, tuple[bytes, dict[str, str]]] = {
        f"input/corpus/{name}": ((CORPUS / name).read_bytes(), case.get("metadata", {}))
        for name, case in EXPECTED.items()
    }
    good = good_csv(5000, seed=31)
    uploads["input/corpus/good-neighbour.csv"] = (good, {})
    uploads["input/corpus/bomb.csv.gz"] = (bomb(256 * MIB), {})
    uploads["input/corpus/one-long-line.csv"] = (b"1" * (100 * MIB), {})
    awkward = {
        "input/corpus/with spaces and + signs.csv": "with_spaces_and_+_signs.csv",
        "input/corpus/ünïcødé-数据.csv": "-corpus_ünïcødé-数据.csv",
        "input/corpus/../../etc/passwd.csv": "passwd.csv",
        "input/corpus/" + "long-" * 190 + ".csv": ".csv",
    }
    for key in awkward:
        uploads[key] = (good_csv(20, seed=32), {})

    def put(item):
        key, (body, metadata) = item
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, uploads.items()))
    upload_huge(s3, bucket, "input/corpus/one-gigabyte.csv", 1024 * MIB)

    uris = {f"s3://{bucket}/{key}" for key in uploads} | {
        f"s3://{bucket}/input/corpus/one-gigabyte.csv"
    }
    try:
        done = collect_done_events(aws["sqs"], aws["done"], uris, timeout=240)
    except TimeoutError:
        print(stack.logs(40))
        raise

    def detail(key: str) -> dict:
        return done[f"s3://{bucket}/{key}"]

    failures = []
    for name, case in EXPECTED.items():
        got = detail(f"input/corpus/{name}")
        if got["status"] != case["status"]:
            failures.append(f"{name}: {got['status']} ({got['error']}), expected {case['status']}")
        elif case["status"] == "FAILED":
            uri = f"s3://{bucket}/input/corpus/{name}"
            if not (got["error"].startswith(uri) and case["error"] in got["error"]):
                failures.append(f"{name}: error {got['error']!r} lacks {case['error']!r}")
        elif got["rows"] != case["rows"] or got["bad_rows"] != case.get("bad_rows", 0):
            failures.append(f"{name}: rows {got['rows']}/{got['bad_rows']} bad")
    assert not failures, "\n".join(failures)

    assert detail("input/corpus/good-neighbour.csv")["status"] == "SUCCEEDED"
    assert detail("input/corpus/good-neighbour.csv")["rows"] == 5000
    big = detail("input/corpus/one-gigabyte.csv")
    assert big["status"] == "FAILED" and f"over the {LIMIT}-byte limit" in big["error"]
    assert "BYOM_MAX_FILE_BYTES" in big["error"]
    long_line = detail("input/corpus/one-long-line.csv")
    assert long_line["status"] == "FAILED" and "line 1" in long_line["error"]
    assert "longer than the 1048576-byte limit" in long_line["error"]
    bombed = detail("input/corpus/bomb.csv.gz")
    assert bombed["status"] == "FAILED" and "decompression bomb" in bombed["error"]
    for key, suffix in awkward.items():
        got = detail(key)
        assert got["status"] == "SUCCEEDED", (key, got)
        output_key = got["output_uri"].split("/", 3)[3]
        assert output_key.startswith("output/") and output_key.endswith(suffix), output_key
        assert ".." not in output_key and "/" not in output_key.removeprefix("output/")
        assert len(output_key) < 260

    # Nothing from a failed job is visible as a finished result.
    outputs = keys_under(s3, bucket, "output/")
    for name, case in EXPECTED.items():
        stem = name.removesuffix(".gz")
        produced = [k for k in outputs if k.endswith(f"-corpus_{stem}")]
        assert len(produced) == (1 if case["status"] == "SUCCEEDED" else 0), (name, produced)
    for name in ("bomb.csv", "one-long-line.csv", "one-gigabyte.csv"):
        assert not [k for k in outputs if k.endswith(f"-corpus_{name}")]

    # A job's item says the same as its event.
    for name in ("non-numeric.csv", "gzipped.csv.gz"):
        got = detail(f"input/corpus/{name}")
        item = job_item(aws["dynamodb"], stack.config.jobs_table, got["job_id"])
        assert item["state"] == got["status"] and item.get("error") == got["error"]


def test_skipped_rows_are_reported_and_left_blank(stack, aws):
    """Run after the corpus: its skip-bad-rows case left an output and an errors file."""
    s3, bucket = aws["s3"], stack.config.bucket
    item = next(
        {k: next(iter(v.values())) for k, v in i.items()}
        for i in aws["dynamodb"].scan(TableName=stack.config.jobs_table)["Items"]
        if i["input_key"]["S"] == "input/corpus/skip-bad-rows.csv"
    )
    assert item["state"] == "SUCCEEDED" and int(item["bad_rows"]) == 2
    output = s3.get_object(Bucket=bucket, Key=item["output_key"])["Body"].read().decode()
    lines = output.split("\n")[:-1]
    assert len(lines) == 12
    assert [i + 1 for i, line in enumerate(lines) if not line] == [3, 10]
    assert np.isfinite(np.array([float(v) for v in lines if v])).all()
    report = s3.get_object(Bucket=bucket, Key=item["errors_key"])["Body"].read().decode()
    assert item["errors_key"].startswith("errors/")
    assert report.splitlines() == [
        "line,column,reason",
        "3,2,'abc' is not a number",
        "10,6,empty cell; a number is required",
    ]


def test_gzip_round_trip_matches_plain(stack, aws):
    s3, bucket = aws["s3"], stack.config.bucket
    data = good_csv(3000, seed=33)
    s3.put_object(Bucket=bucket, Key="input/pair/plain.csv", Body=data)
    s3.put_object(Bucket=bucket, Key="input/pair/packed.csv.gz", Body=gzip.compress(data))
    uris = {f"s3://{bucket}/input/pair/plain.csv", f"s3://{bucket}/input/pair/packed.csv.gz"}
    done = collect_done_events(aws["sqs"], aws["done"], uris, timeout=120)
    bodies = [
        s3.get_object(Bucket=bucket, Key=d["output_uri"].split("/", 3)[3])["Body"].read()
        for d in done.values()
    ]
    assert bodies[0] == bodies[1] and bodies[0].count(b"\n") == 3000
    packed = done[f"s3://{bucket}/input/pair/packed.csv.gz"]
    assert packed["output_uri"].endswith("-pair_packed.csv")


def test_bad_cells_deep_inside_a_multi_chunk_file_are_named(stack, aws):
    """Past the head ingest checks and past the first chunk: found by the workers."""
    s3, bucket = aws["s3"], stack.config.bucket
    base = good_csv(20_000, seed=34)  # ~5 MB: several 1 MiB chunks, through Batch
    assert len(base) > 4 * MIB
    header = b",".join(b"V%d" % i for i in range(30)) + b"\n"
    cases = {
        "input/deep/float32.csv": (with_cell(base, 15_001, 7, b"1e39"), {}),
        "input/deep/bare-cr.csv": (with_cell(base, 12_345, 3, b'"1",2\r3'), {}),
        "input/deep/header.csv": (header + with_cell(base, 9_000, 30, b"1_000"), {}),
        "input/deep/skip.csv": (
            with_cell(with_cell(base, 11_000, 2, b"\xd9\xa3"), 19_999, 30, b"-4e38"),
            {"byom-on-bad-rows": "skip"},
        ),
    }
    for key, (body, metadata) in cases.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    uris = {f"s3://{bucket}/{key}": key for key in cases}
    done = collect_done_events(aws["sqs"], aws["done"], set(uris), timeout=240)

    def error(key: str) -> str:
        got = done[f"s3://{bucket}/{key}"]
        assert got["status"] == "FAILED", got
        assert got["output_uri"] is None or not keys_under(s3, bucket, "output/deep_")
        return str(got["error"])

    assert "float32.csv, line 15001, column 7: '1e39' is beyond the float32 range" in error(
        "input/deep/float32.csv"
    )
    assert "bare-cr.csv, line 12345, column 4: a carriage return inside the line" in error(
        "input/deep/bare-cr.csv"
    )
    # the header is line 1, so the 9,000th row is line 9,001
    assert "header.csv, line 9001, column 30: '1_000' is not a number" in error(
        "input/deep/header.csv"
    )

    skipped = done[f"s3://{bucket}/input/deep/skip.csv"]
    assert skipped["status"] == "SUCCEEDED", skipped
    assert (skipped["rows"], skipped["bad_rows"]) == (20_000, 2)
    output = s3.get_object(Bucket=bucket, Key=skipped["output_uri"].split("/", 3)[3])
    lines = output["Body"].read().split(b"\n")[:-1]
    assert len(lines) == 20_000
    assert [i + 1 for i, line in enumerate(lines) if not line] == [11_000, 19_999]
    report = s3.get_object(Bucket=bucket, Key=skipped["errors_uri"].split("/", 3)[3])
    assert report["Body"].read().decode().splitlines() == [
        "line,column,reason",
        "11000,2,'\u0663' is not a number (it holds the character U+0663)",
        "19999,30,'-4e38' is beyond the float32 range (|x| <= 3.4e38)",
    ]
