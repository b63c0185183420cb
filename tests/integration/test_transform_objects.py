"""SageMaker transform objects through the real local stack: the API's message on the
ingest queue in, the ``.out`` in the job's output bucket out.

Each case is a transform job (its record in the SageMaker table, as the API
writes it) whose objects are sent to the ingest queue as the API sends them;
ingest plans them, Batch children score them against the real model server
(an XGBoost model trained here, text/csv), status assembles the ``.out`` and
counts each object's end on its transform job. All cases go in at once, so
they run side by side as real jobs do.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost

from infra.local.processes import wait_until
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from model.publish import publish
from model.train import train
from shared.transform import (
    ObjectSettings,
    TransformObject,
    TransformRecord,
    TransformStatus,
    object_job_id,
)
from tests.features import write_feature_csv
from tests.integration.helpers import job_item, with_cell

pytestmark = pytest.mark.integration

KIB = 1024
# Neither is byom's bucket: objects are read, and .out files written, where the job
# says; only staging (the plan, chunk outputs, an inflated gzip object) is byom's.
IN_BUCKET = "transform-inputs"
OUT_BUCKET = "transform-results"
MODEL = "sample/1/model.tar.gz"
SLOW_MODEL = "slow/1/model.tar.gz"
CSV_IO = {"content_type": "text/csv", "accept": "text/csv"}


def features(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed), buffer)
    return buffer.getvalue().encode()


@dataclass
class Case:
    """One transform job: its objects (key -> bytes) and how they are scored."""

    name: str
    objects: dict[str, bytes]
    settings: ObjectSettings
    target_model: str = MODEL
    arn: str = field(init=False)

    def __post_init__(self) -> None:
        self.arn = f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{self.name}"

    def output_key(self, key: str) -> str:
        return f"out/{self.name}/{key.rsplit('/', 1)[-1]}.out"


def cases() -> list[Case]:
    rows = features(400, seed=3)  # ~60 KiB: several 16 KiB chunks
    ids = b"".join(b"id%d,%s\n" % (i, line) for i, line in enumerate(rows.splitlines()))
    jsonl = b"".join(
        json.dumps({"id": i, "instances": [[float(x) for x in line.split(b",")]]}).encode() + b"\n"
        for i, line in enumerate(features(20, seed=5).splitlines())
    )
    return [
        Case("line-single", {"in/single.csv": rows}, ObjectSettings(
            split_type="Line", batch_strategy="SingleRecord", assemble_with="Line", **CSV_IO)),
        Case("line-multi", {"in/multi.csv": rows}, ObjectSettings(
            split_type="Line", batch_strategy="MultiRecord", max_payload_bytes=8 * KIB,
            max_concurrent=4, assemble_with="Line", **CSV_IO)),
        Case("whole-none", {"in/whole.csv": features(50, seed=4)}, ObjectSettings(
            split_type="None", assemble_with="None", **CSV_IO)),
        Case("gzip", {"in/rows.csv.gz": gzip.compress(rows)}, ObjectSettings(
            compression="Gzip", split_type="Line", batch_strategy="MultiRecord",
            assemble_with="Line", **CSV_IO)),
        Case("csv-join", {"in/ids.csv": ids}, ObjectSettings(
            split_type="Line", batch_strategy="MultiRecord", assemble_with="Line",
            input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]", **CSV_IO)),
        Case("jsonl-join", {"in/records.jsonl": jsonl}, ObjectSettings(
            split_type="Line", batch_strategy="SingleRecord", assemble_with="Line",
            content_type="application/json", accept="application/json",
            input_filter="$.instances", join_source="Input",
            output_filter="$['id','SageMakerOutput']")),
        Case("one-bad", {
            "in/good.csv": features(30, seed=6),
            "in/bad.csv": with_cell(features(30, seed=7), 7, 4, b"abc"),
        }, ObjectSettings(split_type="Line", batch_strategy="MultiRecord", assemble_with="Line",
                          **CSV_IO)),
        Case("timeout", {"in/slow.csv": features(3, seed=8)}, ObjectSettings(
            split_type="Line", batch_strategy="MultiRecord", assemble_with="Line",
            invocations_timeout_seconds=1, invocations_max_retries=1, **CSV_IO),
            target_model=SLOW_MODEL),
    ]  # fmt: skip


SLOW_SCRIPT = textwrap.dedent(
    """
    import os
    import time

    import xgboost


    def model_fn(model_dir):
        booster = xgboost.Booster()
        booster.load_model(os.path.join(model_dir, "xgboost-model.json"))
        return booster


    def predict_fn(data, model):
        time.sleep(4)  # longer than the job's InvocationsTimeoutInSeconds
        return model.inplace_predict(data, validate_features=False)
    """
).encode()


def slow_package(booster: xgboost.Booster) -> bytes:
    buffer = io.BytesIO()
    model = bytearray(booster.save_raw("json"))
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (
            ("xgboost-model.json", bytes(model)),
            ("code/inference.py", SLOW_SCRIPT),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        settings={"BYOM_CHUNK_BYTES": str(16 * KIB), "BYOM_CHUNKS_PER_CHILD": "2"},
        model_server_env={"BYOM_ALLOW_MODEL_CODE": "true"},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def booster(tmp_path_factory) -> xgboost.Booster:
    return train(generate(2000, seed=1, fraud_rate=0.05), rounds=8, seed=1)


@pytest.fixture(scope="module")
def store(stack):
    from shared.transform_store import TransformStore

    return TransformStore(stack.config.sagemaker_table, stack.client("dynamodb"))


@pytest.fixture(scope="module")
def ran(stack, booster, store, tmp_path_factory) -> dict[str, Case]:
    """Every case sent at once; returns them by name once each object's job ended."""
    s3, sqs, dynamodb = stack.client("s3"), stack.client("sqs"), stack.client("dynamodb")
    bucket = stack.config.bucket
    folder = tmp_path_factory.mktemp("sample")
    booster.save_model(str(folder / "xgboost-model.json"))
    publish(folder, "sample", "1", bucket=bucket, s3=s3)
    s3.put_object(Bucket=bucket, Key=f"models/{SLOW_MODEL}", Body=slow_package(booster))
    s3.create_bucket(Bucket=IN_BUCKET)
    s3.create_bucket(Bucket=OUT_BUCKET)
    queue = stack.resources.queue_urls["ingest"]
    now = datetime.now(UTC)
    every = cases()
    for case in every:
        record = TransformRecord(
            name=case.name, arn=case.arn, status=TransformStatus.IN_PROGRESS, request={},
            model_name="sample", creation_time=now, last_modified_time=now,
            transform_start_time=now, objects=len(case.objects),
        )  # fmt: skip
        store.create(record)
        for index, (key, data) in enumerate(case.objects.items()):
            etag = s3.put_object(Bucket=IN_BUCKET, Key=f"transform/{key}", Body=data)["ETag"]
            message = TransformObject(
                transform_job_name=case.name, transform_job_arn=case.arn, index=index,
                objects=len(case.objects), bucket=IN_BUCKET, key=f"transform/{key}", etag=etag,
                size=len(data), output_bucket=OUT_BUCKET, output_key=case.output_key(key),
                settings=case.settings, target_model=case.target_model,
            )  # fmt: skip
            sqs.send_message(QueueUrl=queue, MessageBody=message.model_dump_json())

    def ended() -> bool:
        return all(
            (record := store.get(case.name)) is not None and record.status.terminal
            for case in every
        )

    try:
        wait_until(ended, timeout=240, what="every transform job ended")
    except TimeoutError:
        for case in every:
            for index in range(len(case.objects)):
                job_id = object_job_id(case.arn, index)
                print(case.name, index, dynamodb.get_item(
                    TableName=stack.config.jobs_table, Key={"job_id": {"S": job_id}}
                ).get("Item"))  # fmt: skip
        print(stack.logs(60))
        raise
    return {case.name: case for case in every}


def out(stack: LocalStack, case: Case, key: str) -> bytes:
    s3 = stack.client("s3")
    body: bytes = s3.get_object(Bucket=OUT_BUCKET, Key=case.output_key(key))["Body"].read()
    return body


def predictions(booster: xgboost.Booster, data: bytes) -> np.ndarray:
    frame = pd.read_csv(io.BytesIO(data), header=None, dtype=np.float32)
    return booster.inplace_predict(frame.to_numpy(), validate_features=False)


def numbers(lines: list[bytes]) -> np.ndarray:
    return np.array([float(line) for line in lines])


def completed(store: Any, name: str) -> None:
    record = store.get(name)
    assert record.status is TransformStatus.COMPLETED, record
    assert record.objects_ended == record.objects and record.objects_failed == 0
    assert record.transform_end_time is not None


@pytest.mark.parametrize("name", ["line-single", "line-multi", "gzip"])
def test_split_type_line_both_strategies_and_gzip(stack, ran, store, booster, name):
    (key,) = ran[name].objects
    body = out(stack, ran[name], key)
    data = features(400, seed=3)
    assert body.count(b"\n") == 400 and body.endswith(b"\n")
    np.testing.assert_allclose(
        numbers(body.splitlines()), predictions(booster, data), rtol=0, atol=1e-6
    )
    completed(store, name)
    # One object, several chunks: children shared it.
    item = job_item(stack.client("dynamodb"), stack.config.jobs_table,
                    object_job_id(ran[name].arn, 0))  # fmt: skip
    assert int(item["chunk_count"]) > 1
    assert item["kind"] == "transform" and item["transform_job_name"] == name


def test_split_type_none_sends_the_whole_object_and_assemble_none_keeps_the_bytes(
    stack, ran, store, booster
):
    case = ran["whole-none"]
    body = out(stack, case, "in/whole.csv")
    # One request, its answer as it came: one line per row, nothing added.
    expected = predictions(booster, features(50, seed=4))
    np.testing.assert_allclose(numbers(body.splitlines()), expected, rtol=0, atol=1e-6)
    completed(store, "whole-none")


def test_csv_join_with_filters(stack, ran, store, booster):
    body = out(stack, ran["csv-join"], "in/ids.csv")
    lines = body.splitlines()
    assert len(lines) == 400
    assert [line.split(b",")[0] for line in lines[:3]] == [b"id0", b"id1", b"id2"]
    assert all(line.count(b",") == 1 for line in lines)
    np.testing.assert_allclose(
        numbers([line.split(b",")[1] for line in lines]),
        predictions(booster, features(400, seed=3)), rtol=0, atol=1e-6,
    )  # fmt: skip
    completed(store, "csv-join")


def test_json_lines_join_with_filters(stack, ran, store, booster):
    body = out(stack, ran["jsonl-join"], "in/records.jsonl")
    records = [json.loads(line) for line in body.splitlines()]
    assert [r["id"] for r in records] == list(range(20))
    assert all(set(r) == {"id", "SageMakerOutput"} for r in records)
    scores = [r["SageMakerOutput"]["predictions"][0] for r in records]
    np.testing.assert_allclose(
        scores, predictions(booster, features(20, seed=5)), rtol=0, atol=1e-6
    )
    completed(store, "jsonl-join")


def test_a_failing_object_has_no_out_and_its_reason_names_line_and_column(stack, ran, store):
    case = ran["one-bad"]
    assert out(stack, case, "in/good.csv").count(b"\n") == 30
    s3 = stack.client("s3")
    listed = s3.list_objects_v2(Bucket=OUT_BUCKET, Prefix=f"out/{case.name}/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [case.output_key("in/good.csv")]
    head = s3.head_object(Bucket=OUT_BUCKET, Key=case.output_key("in/good.csv"))
    assert head["Metadata"]["byom-job-id"] == object_job_id(case.arn, 0)  # whose .out it is
    record = store.get(case.name)
    assert record.status is TransformStatus.FAILED
    assert record.objects_ended == 2 and record.objects_failed == 1
    reason = record.failure_reason
    assert f"s3://{IN_BUCKET}/transform/in/bad.csv" in reason
    assert "line 7, column 4" in reason and "'abc'" in reason


def test_an_invocation_past_its_timeout_fails_the_object(stack, ran, store):
    case = ran["timeout"]
    record = store.get(case.name)
    assert record.status is TransformStatus.FAILED
    assert "no answer within 1 s" in record.failure_reason
    assert "line 1" in record.failure_reason
    listed = stack.client("s3").list_objects_v2(Bucket=OUT_BUCKET, Prefix="out/timeout/")
    assert listed.get("KeyCount", 0) == 0


def test_staging_stays_in_byom_s_bucket(stack, ran):
    s3 = stack.client("s3")
    inputs = {f"transform/{key}" for case in ran.values() for key in case.objects}
    listed = s3.list_objects_v2(Bucket=IN_BUCKET)
    assert {o["Key"] for o in listed.get("Contents", [])} == inputs
