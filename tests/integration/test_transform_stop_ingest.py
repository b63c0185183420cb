"""A stop that overtakes ingest: no object of a stopped transform job is planned or
run, and each object's end is counted once. Against a real moto server, with the
API's and ingest's own functions called in the order the race runs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.ingest import transform_object
from services.ingest.plan_transform import plan_transform
from services.transform.jobs import stop_transform_job
from shared import aws
from shared.schemas import JobState
from shared.settings import get_settings
from shared.transform import (
    ObjectSettings,
    TransformObject,
    TransformRecord,
    TransformStatus,
    object_job_id,
)
from shared.transform_store import TransformStore
from tests.integration.test_endings import Env, env  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_endpoint(own_moto_endpoint: str) -> str:
    """A moto server of this module's own: these tests put SageMaker's events on the
    default bus, where a CloudFormation deploy on the shared server leaves rules that
    make moto answer 500 to every matching event (LOCAL-AWS.md)."""
    return own_moto_endpoint


@pytest.fixture
def transforms(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[TransformStore]:  # noqa: F811
    """The SageMaker table and the scheduler queue, both this test's own."""
    url: str = env.sqs.create_queue(QueueName=f"{env.bucket}-scheduler")["QueueUrl"]
    monkeypatch.setenv("BYOM_SCHEDULER_QUEUE_URL", url)
    monkeypatch.setenv("BYOM_SAGEMAKER_TABLE", f"{env.bucket}-sm")
    get_settings.cache_clear()
    aws.dynamodb().create_table(
        TableName=f"{env.bucket}-sm",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield TransformStore()
    get_settings.cache_clear()


def schedule_requests(env: Env) -> list[dict[str, Any]]:  # noqa: F811
    url = get_settings().scheduler_queue_url
    messages = env.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return list(messages.get("Messages", []))


def transform_job(
    env: Env,  # noqa: F811
    store: TransformStore,
    name: str,
    objects: int,
) -> list[TransformObject]:
    """An InProgress transform job as the API writes it, and the messages of its objects."""
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:transform-job/{name}"
    now = datetime.now(UTC)
    store.create(
        TransformRecord(
            name=name, arn=arn, status=TransformStatus.IN_PROGRESS, request={},
            model_name="m", creation_time=now, last_modified_time=now,
            transform_start_time=now, objects=objects,
            object_jobs=[object_job_id(arn, index) for index in range(objects)],
        )
    )  # fmt: skip
    messages = []
    for index in range(objects):
        key = f"in/{name}/part-{index}.csv"
        etag = env.s3.put_object(Bucket=env.bucket, Key=key, Body=b"1,2\n")["ETag"]
        messages.append(
            TransformObject(
                transform_job_name=name, transform_job_arn=arn, index=index, objects=objects,
                bucket=env.bucket, key=key, etag=etag, size=4, output_bucket=env.bucket,
                output_key=f"out/{name}/part-{index}.csv.out",
                settings=ObjectSettings(split_type="Line"), target_model="m/1/model.tar.gz",
            )
        )  # fmt: skip
    return messages


def ended(store: TransformStore, name: str) -> TransformRecord:
    record = store.get(name)
    assert record is not None
    return record


def test_an_object_that_arrives_after_the_stop_is_not_planned_and_counts_once(
    env: Env,  # noqa: F811
    transforms: TransformStore,
) -> None:
    first, second = transform_job(env, transforms, "stopped-early", 2)
    # StopTransformJob has moved the job to Stopping; its cancelling of the
    # objects' jobs has not reached them yet when ingest takes object 1.
    transforms.request_stop("stopped-early")
    assert transform_object.handle_transform_object(second) is None
    assert env.store.get(object_job_id(second.transform_job_arn, 1)) is None
    assert schedule_requests(env) == []
    stopping = ended(transforms, "stopped-early")
    assert (stopping.status, stopping.objects_ended) == (TransformStatus.STOPPING, 1)
    # The API's stop carries on: neither object has a job, both have ended.
    stop_transform_job(transforms, {"TransformJobName": "stopped-early"})
    stopped = ended(transforms, "stopped-early")
    assert (stopped.status, stopped.objects_ended) == (TransformStatus.STOPPED, 2)
    # Object 0's message comes after the job was Stopped: nothing runs, nothing counts twice.
    assert transform_object.handle_transform_object(first) is None
    assert env.store.get(object_job_id(first.transform_job_arn, 0)) is None
    assert schedule_requests(env) == []
    assert ended(transforms, "stopped-early").objects_ended == 2
    assert env.keys("out/") == []


def test_a_stop_between_ingest_s_check_and_its_job_cancels_the_new_job(
    env: Env,  # noqa: F811
    transforms: TransformStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (only,) = transform_job(env, transforms, "stopped-mid-plan", 1)

    def stop_while_planning(job_id: str, message: TransformObject) -> Any:
        # The whole StopTransformJob runs while ingest plans: it finds no job for
        # the object, so it counts the object as ended and the job is Stopped.
        stop_transform_job(transforms, {"TransformJobName": "stopped-mid-plan"})
        return plan_transform(job_id, message)

    monkeypatch.setattr(transform_object, "plan_transform", stop_while_planning)
    job_id = transform_object.handle_transform_object(only)
    assert job_id == object_job_id(only.transform_job_arn, 0)
    job = env.store.get(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    assert schedule_requests(env) == []
    stopped = ended(transforms, "stopped-mid-plan")
    assert (stopped.status, stopped.objects_ended, stopped.objects_failed) == (
        TransformStatus.STOPPED,
        1,
        0,
    )
    assert env.keys("out/") == []
    assert [event["status"] for event in env.done_events()] == ["CANCELLED"]


def test_a_redelivered_object_of_a_stopping_job_cancels_its_job_not_yet_on_batch(
    env: Env,  # noqa: F811
    transforms: TransformStore,
) -> None:
    (only,) = transform_job(env, transforms, "stopped-redelivered", 1)
    job_id = transform_object.handle_transform_object(only)
    assert job_id is not None
    assert len(schedule_requests(env)) == 1
    # The stop got as far as Stopping; its cancelling of the object's job never ran.
    transforms.request_stop("stopped-redelivered")
    assert transform_object.handle_transform_object(only) == job_id
    job = env.store.get(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    stopped = ended(transforms, "stopped-redelivered")
    assert (stopped.status, stopped.objects_ended) == (TransformStatus.STOPPED, 1)
