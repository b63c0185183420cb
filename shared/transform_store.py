"""SageMaker's models and transform jobs, in their DynamoDB table.

One table (setting ``sagemaker_table``), hash key ``pk``: ``model#<ModelName>``
for a model, ``transform#<TransformJobName>`` for a transform job, the name in
lower case (:func:`key`)
(:class:`shared.transform.TransformRecord`). Every change is a conditional write:
a name is created once, an object's end is counted once (its index goes into the
number set ``ended_objects`` in the same write as the counters, as
``shared/jobs.py`` counts chunks), and a transform job settles once.

Status calls :meth:`TransformStore.object_ended` as each object's job ends; the
last one settles the transform job (Completed, Failed, or Stopped when a stop
was asked for) and sends SageMaker's state-change event to the default bus,
its detail DescribeTransformJob's answer (:func:`describe`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared import aws
from shared.errors import ByomError
from shared.settings import get_settings
from shared.transform import (
    DEFAULT_BUS,
    EVENT_DETAIL_TYPE,
    TransformRecord,
    TransformStatus,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

MODEL = "model#"
TRANSFORM = "transform#"
# SageMaker's FailureReason holds at most this many characters.
MAX_FAILURE_REASON = 1024
_LIVE = (TransformStatus.IN_PROGRESS.value, TransformStatus.STOPPING.value)

_serializer = TypeSerializer()


def key(kind: str, name: str) -> str:
    """An item's ``pk``. SageMaker's names are unique whatever their case (its ARNs
    carry them in lower case), so the key does too; the item keeps the name as given."""
    return kind + name.lower()


_deserializer = TypeDeserializer()


class NameTaken(ByomError):
    """A model or transform job with this name exists already."""


@dataclass(frozen=True)
class StoredModel:
    name: str
    arn: str
    creation_time: datetime
    request: dict[str, Any]  # CreateModel's request as received (after validation)


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> str:
    return _iso(datetime.now(UTC))


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _record(item: dict[str, Any]) -> TransformRecord:
    values = _plain(item)
    values["request"] = json.loads(values["request"])
    return TransformRecord.model_validate(values)


def describe(record: TransformRecord) -> dict[str, Any]:
    """DescribeTransformJob's answer: the request's members (defaults resolved) and
    the job's state; times as ``datetime`` (the API and the event write them out)."""
    answer = {key: value for key, value in record.request.items() if key != "Tags"}
    answer |= {
        "TransformJobName": record.name,
        "TransformJobArn": record.arn,
        "TransformJobStatus": record.status.value,
        "ModelName": record.model_name,
        "CreationTime": record.creation_time,
    }
    if record.failure_reason:
        answer["FailureReason"] = record.failure_reason
    if record.transform_start_time is not None:
        answer["TransformStartTime"] = record.transform_start_time
    if record.transform_end_time is not None:
        answer["TransformEndTime"] = record.transform_end_time
    return answer


def event_detail(record: TransformRecord) -> dict[str, Any]:
    """The state-change event's detail: :func:`describe`, times as ISO 8601 to the
    second (``2018-10-06T12:26:13Z``) and the tags as an object, as SageMaker's events
    carry them."""
    detail = {
        key: value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(value, datetime)
        else value
        for key, value in describe(record).items()
    }
    detail["Tags"] = {tag["Key"]: tag["Value"] for tag in record.request.get("Tags", [])}
    return detail


class TransformStore:
    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table = table or get_settings().sagemaker_table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def _put_new(self, item: dict[str, Any]) -> None:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_attrs(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise NameTaken(item["pk"]) from None
            raise

    def _get(self, pk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=_attrs({"pk": pk}), ConsistentRead=True
        )
        return response.get("Item")

    def _scan(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(pk, :prefix)",
            ExpressionAttributeValues=_attrs({":prefix": prefix}),
            ConsistentRead=True,
        )
        for page in pages:
            items.extend(page.get("Items", []))
        return items

    # Models.

    def create_model(self, model: StoredModel) -> None:
        """Store a new model; :class:`NameTaken` when the name is taken."""
        self._put_new(
            {
                "pk": key(MODEL, model.name),
                "name": model.name,
                "arn": model.arn,
                "creation_time": _iso(model.creation_time),
                "request": json.dumps(model.request),
            }
        )

    def get_model(self, name: str) -> StoredModel | None:
        item = self._get(key(MODEL, name))
        return None if item is None else _model(item)

    def list_models(self) -> list[StoredModel]:
        return [_model(item) for item in self._scan(MODEL)]

    def delete_model(self, name: str) -> bool:
        """False when there was no such model."""
        response = self.client.delete_item(
            TableName=self.table, Key=_attrs({"pk": key(MODEL, name)}), ReturnValues="ALL_OLD"
        )
        return bool(response.get("Attributes"))

    # Transform jobs.

    def create(self, record: TransformRecord) -> None:
        """Store a new transform job; :class:`NameTaken` when the name is taken."""
        values = record.model_dump(mode="json", exclude_none=True)
        values["request"] = json.dumps(record.request)
        self._put_new({"pk": key(TRANSFORM, record.name), **values})

    def get(self, name: str) -> TransformRecord | None:
        item = self._get(key(TRANSFORM, name))
        return None if item is None else _record(item)

    def list(self) -> list[TransformRecord]:
        return [_record(item) for item in self._scan(TRANSFORM)]

    def _update(
        self, name: str, expression: str, condition: str, values: dict[str, Any], **extra: Any
    ) -> tuple[dict[str, Any] | None, bool]:
        """(the item after, True) or, when ``condition`` fails, (the item before, False)."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=_attrs({"pk": key(TRANSFORM, name)}),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeValues=_attrs(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: Any = exc.response.get("Item")
            return (old if isinstance(old, dict) and old else None), False
        return response["Attributes"], True

    def request_stop(self, name: str) -> TransformRecord | None:
        """InProgress -> Stopping (and the event); the job as it stands otherwise.

        None when there is no such job. A job whose objects have all ended
        settles as Stopped at once."""
        item, moved = self._update(
            name,
            "SET #status = :stopping, last_modified_time = :now",
            "#status = :running",
            {
                ":stopping": TransformStatus.STOPPING.value,
                ":running": TransformStatus.IN_PROGRESS.value,
                ":now": _now(),
            },
            ExpressionAttributeNames={"#status": "status"},
        )
        if item is None:
            return None
        record = _record(item)
        if moved:
            self.announce(record)
        return self._settle_if_done(item, record)

    def object_ended(
        self, name: str, index: int, failed: bool, reason: str | None = None
    ) -> TransformRecord | None:
        """Count the end of the transform job's ``index``-th object, once.

        ``failed``: the object has no output; ``reason`` says why (the first one
        becomes the job's FailureReason). When the last object ends, the job
        settles: Stopped if a stop was asked for, Failed if any object failed,
        Completed otherwise; TransformEndTime is set and the state-change event
        sent. A repeated call counts nothing and finishes what an interrupted
        one left (the settling, the event). Returns the job as it then stands;
        None when there is no such transform job.
        """
        values: dict[str, Any] = {
            ":one": 1,
            ":failed": 1 if failed else 0,
            ":ended": {index},
            ":index": index,
            ":now": _now(),
        }
        expression = (
            "ADD objects_ended :one, objects_failed :failed, ended_objects :ended "
            "SET last_modified_time = :now"
        )
        if failed:
            values[":reason"] = (reason or f"object {index} failed")[:MAX_FAILURE_REASON]
            expression += ", failure_reason = if_not_exists(failure_reason, :reason)"
        item, _ = self._update(name, expression, "NOT contains(ended_objects, :index)", values)
        if item is None:
            return None
        return self._settle_if_done(item, _record(item))

    def _settle_if_done(self, item: dict[str, Any], record: TransformRecord) -> TransformRecord:
        if record.objects_ended >= record.objects and not record.status.terminal:
            settled = self.settle(record)
            return settled or self.get(record.name) or record
        if record.status.terminal and _plain(item).get("announced") != record.status.value:
            self.announce(record)  # settled, but the event may not have gone out
        return record

    def settle(self, record: TransformRecord, reason: str | None = None) -> TransformRecord | None:
        """End a live job: Stopped if stopping, Failed if an object failed (or
        ``reason`` is given), Completed otherwise. None if it had ended already."""
        if record.status is TransformStatus.STOPPING:
            target = TransformStatus.STOPPED
        elif record.objects_failed or reason:
            target = TransformStatus.FAILED
        else:
            target = TransformStatus.COMPLETED
        now = _now()
        values: dict[str, Any] = {
            ":target": target.value,
            ":now": now,
            ":running": _LIVE[0],
            ":stopping": _LIVE[1],
        }
        expression = "SET #status = :target, transform_end_time = :now, last_modified_time = :now"
        if reason:
            values[":reason"] = reason[:MAX_FAILURE_REASON]
            expression += ", failure_reason = if_not_exists(failure_reason, :reason)"
        item, moved = self._update(
            record.name,
            expression,
            "#status IN (:running, :stopping)",
            values,
            ExpressionAttributeNames={"#status": "status"},
        )
        if not moved or item is None:
            return None
        settled = _record(item)
        self.announce(settled)
        log.info(
            "transform job settled",
            extra={"transform_job": settled.name, "status": settled.status.value},
        )
        return settled

    def announce(self, record: TransformRecord) -> None:
        """Send SageMaker's state-change event for the job's status (at least once)."""
        response = aws.events().put_events(
            Entries=[
                {
                    "Source": get_settings().transform_event_source,
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Detail": json.dumps(event_detail(record)),
                    "EventBusName": DEFAULT_BUS,
                    "Resources": [record.arn],
                }
            ]
        )
        if response.get("FailedEntryCount", 0):
            raise ByomError(f"could not send the event of transform job {record.name}: {response}")
        self.client.update_item(
            TableName=self.table,
            Key=_attrs({"pk": key(TRANSFORM, record.name)}),
            UpdateExpression="SET announced = :status",
            ExpressionAttributeValues=_attrs({":status": record.status.value}),
        )


def _model(item: dict[str, Any]) -> StoredModel:
    values = _plain(item)
    return StoredModel(
        name=values["name"],
        arn=values["arn"],
        creation_time=datetime.fromisoformat(values["creation_time"]),
        request=json.loads(values["request"]),
    )
