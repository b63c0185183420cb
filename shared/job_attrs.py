"""A job item's attributes as DynamoDB's low-level client writes and reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attrs(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in values.items()}


def from_attrs(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def now() -> datetime:
    return datetime.now(UTC)


def timestamp() -> str:
    """Now, in the same ISO form pydantic writes (``...Z``), so stored times sort."""
    return now().isoformat().replace("+00:00", "Z")
