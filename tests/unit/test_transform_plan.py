"""Ingest plans a SageMaker transform object from its message: split, gzip, output, kind."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.ingest import handler, plan_transform
from services.ingest.inflate import Staged
from shared.errors import InputError
from shared.formats import JobKind
from shared.plans import TransformSource
from shared.settings import get_settings
from shared.transform import ObjectSettings, TransformObject, object_job_id

MIB = 1024 * 1024
ARN = "arn:aws:sagemaker:us-east-1:123456789012:transform-job/churn"


def message(size: int, **settings: Any) -> TransformObject:
    return TransformObject(
        transform_job_name="churn",
        transform_job_arn=ARN,
        index=2,
        objects=3,
        bucket="users-data",
        key="batch/in/part-2.csv",
        etag='"abc"',
        size=size,
        output_bucket="users-results",
        output_key="batch/out/part-2.csv.out",
        settings=ObjectSettings(**settings),
        target_model="churn/1/model.tar.gz",
        environment={"SAGEMAKER_PROGRAM": "inference.py"},
    )


def test_split_type_line_cuts_one_big_object_into_byte_ranges_across_children():
    size = 3 * get_settings().chunk_bytes + 5
    plan = plan_transform.plan_transform("t1", message(size, split_type="Line"))
    assert plan.kind is JobKind.TRANSFORM
    assert len(plan.chunks) == 4
    assert [c.start for c in plan.chunks] == [i * get_settings().chunk_bytes for i in range(4)]
    assert plan.chunks[-1].end == size
    # Read from the user's bucket; staging stays in byom's.
    assert (plan.bucket, plan.key, plan.etag) == ("users-data", "batch/in/part-2.csv", '"abc"')
    assert plan.staging == get_settings().bucket
    source = plan.transform
    assert isinstance(source, TransformSource)
    assert (source.output_bucket, source.output_key) == (
        "users-results",
        "batch/out/part-2.csv.out",
    )
    assert source.input_uri == "s3://users-data/batch/in/part-2.csv"
    assert plan.target_model == "churn/1/model.tar.gz"
    assert source.environment == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert (source.transform_job_name, source.transform_index) == ("churn", 2)
    assert plan.processing is None and plan.media is None


def test_split_type_none_is_one_chunk_the_whole_object():
    size = 3 * get_settings().chunk_bytes
    plan = plan_transform.plan_transform(
        "t1", message(size, split_type="None", max_payload_bytes=None)
    )
    assert [(c.start, c.end) for c in plan.chunks] == [(0, size)]


def test_split_type_none_over_the_payload_fails_at_ingest_naming_the_setting():
    with pytest.raises(InputError) as caught:
        plan_transform.plan_transform("t1", message(7 * MIB, split_type="None"))
    assert caught.value.uri == "s3://users-data/batch/in/part-2.csv"
    assert "MaxPayloadInMB" in caught.value.reason


def test_an_empty_object_fails_with_its_name():
    with pytest.raises(InputError, match="empty"):
        plan_transform.plan_transform("t1", message(0, split_type="Line"))


def test_gzip_is_inflated_into_byom_s_staging_first(monkeypatch):
    calls: list[dict[str, Any]] = []

    def inflate(bucket: str, key: str, etag: str, target_key: str, **kwargs: Any) -> Staged:
        calls.append({"bucket": bucket, "key": key, "target": target_key, **kwargs})
        return Staged(key=target_key, etag="inflated", size=5000)

    monkeypatch.setattr(plan_transform, "inflate_to", inflate)
    plan = plan_transform.plan_transform("t1", message(100, split_type="Line", compression="Gzip"))
    (call,) = calls
    assert (call["bucket"], call["key"]) == ("users-data", "batch/in/part-2.csv")
    assert call["target_bucket"] == get_settings().bucket
    assert (plan.bucket, plan.key, plan.etag, plan.size) == (
        get_settings().bucket,
        call["target"],
        "inflated",
        5000,
    )
    # Errors still name the user's object, not the inflated copy.
    assert plan.transform is not None
    assert plan.transform.input_uri == "s3://users-data/batch/in/part-2.csv"


def test_the_ingest_queue_takes_transform_objects_beside_s3_events(monkeypatch):
    seen: list[Any] = []
    monkeypatch.setattr(handler, "handle_transform_object", lambda m: seen.append(m) or "t")
    monkeypatch.setattr(handler, "handle_upload", lambda e: seen.append(e) or "u")
    body = message(10, split_type="Line").model_dump_json()
    assert handler.handle_message(body) == "t"
    assert isinstance(seen[0], TransformObject) and seen[0].index == 2
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-01-01T00:00:00Z",
        "detail": {
            "bucket": {"name": "byom-local"},
            "object": {"key": "input/a.csv", "size": 3, "etag": "e"},
        },
    }
    assert handler.handle_message(json.dumps(event)) == "u"


def test_the_job_id_is_the_object_s_so_a_redelivery_finds_its_job():
    assert object_job_id(ARN, 2) == object_job_id(ARN, 2) != object_job_id(ARN, 1)


def test_a_transform_object_always_runs_on_batch_however_small():
    from services.scheduler import inline

    plan = plan_transform.plan_transform("t1", message(100, split_type="Line"))
    assert not inline.eligible(plan, get_settings())
