from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared import naming
from shared.events import job_finished
from shared.schemas import (
    Chunk,
    ChunkDone,
    ChunkFailure,
    ChunkPlan,
    JobItem,
    JobState,
    S3ObjectCreatedEvent,
    ScheduleRequest,
)

S3_EVENT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "123456789012",
    "time": "2026-11-25T03:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::byom-local"],
    "detail": {
        "version": "0",
        "bucket": {"name": "byom-local"},
        "object": {
            "key": "input/sample.csv",
            "size": 1234,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "617f08299329d189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "reason": "PutObject",
    },
}


def test_s3_object_created_event_parses():
    event = S3ObjectCreatedEvent.model_validate_json(json.dumps(S3_EVENT))
    assert event.detail.object.key == "input/sample.csv"
    assert event.detail.object.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update({"source": "aws.ec2"}),
        lambda e: e.update({"detail-type": "Object Deleted"}),
        lambda e: e["detail"]["object"].pop("etag"),
        lambda e: e["detail"]["object"].update({"size": -1}),
        lambda e: e["detail"]["object"].update({"key": ""}),
    ],
)
def test_untrusted_events_are_rejected(mutate):
    event = json.loads(json.dumps(S3_EVENT))
    mutate(event)
    with pytest.raises(ValidationError):
        S3ObjectCreatedEvent.model_validate(event)


def test_messages_round_trip_and_forbid_unknown_fields():
    done = ChunkDone(
        job_id="j",
        chunk_index=3,
        attempt=1,
        rows=10,
        failure=ChunkFailure(kind="input", reason="x", line=4),
    )
    assert ChunkDone.model_validate_json(done.model_dump_json()) == done
    request = ScheduleRequest(job_id="j", chunk_count=2, plan_key="staging/j/plan.json")
    assert ScheduleRequest.model_validate_json(request.model_dump_json()) == request
    with pytest.raises(ValidationError):
        ScheduleRequest.model_validate({**request.model_dump(), "extra": 1})
    with pytest.raises(ValidationError):
        ScheduleRequest.model_validate({**request.model_dump(), "version": 2})


def test_plan_needs_a_chunk():
    with pytest.raises(ValidationError):
        ChunkPlan(job_id="j", bucket="b", key="k", etag="e", size=1, header=False, chunks=())
    plan = ChunkPlan(
        job_id="j", bucket="b", key="k", etag="e", size=9, header=False,
        chunks=(Chunk(index=0, start=0, end=9),),
    )  # fmt: skip
    assert ChunkPlan.model_validate_json(plan.model_dump_json()) == plan


def _job(**changes):
    created = datetime(2026, 11, 25, 3, 0, 0, tzinfo=UTC)
    values = dict(
        job_id="j", state=JobState.SUCCEEDED, bucket="byom-local", input_key="input/a b.csv",
        input_etag="e", input_size=10, output_key="output/20261125T030000Z-a_b.csv",
        created_at=created, updated_at=created, finished_at=created.replace(second=42),
        deadline_epoch=0, expires_at=0, chunk_count=3, rows=100,
    )  # fmt: skip
    values.update(changes)
    return JobItem(**values)


def test_done_event_detail():
    detail = job_finished(_job())
    assert detail.status == "SUCCEEDED"
    assert detail.output_uri == "s3://byom-local/output/20261125T030000Z-a_b.csv"
    assert detail.input_uri == "s3://byom-local/input/a b.csv"
    assert (detail.rows, detail.chunks, detail.duration_seconds) == (100, 3, 42.0)
    failed = job_finished(_job(state=JobState.FAILED, error="bad"))
    assert failed.output_uri is None and failed.error == "bad"
    with pytest.raises(ValueError, match="not finished"):
        job_finished(_job(state=JobState.RUNNING))


def test_names_are_deterministic_and_safe():
    a = naming.job_id_for("b", "input/x.csv", '"etag1"')
    assert a == naming.job_id_for("b", "input/x.csv", "etag1")
    assert a != naming.job_id_for("b", "input/x.csv", "etag2")
    assert a != naming.job_id_for("b", "input/y.csv", "etag1")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert naming.output_key("input/x.csv", created) == "output/20260102T030405Z-x.csv"
    assert ":" not in naming.output_key("input/sub/we:ird name.csv", created)
    assert naming.output_key("input/../../etc/passwd", created).startswith("output/")
    assert ".." not in naming.output_key("input/../../etc/passwd", created)
    long_key = "input/" + "é" * 600 + ".csv"
    assert len(naming.output_key(long_key, created)) < 260
