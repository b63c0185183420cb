"""The local DynamoDB's item operations, run one at a time as DynamoDB makes each atomic.

moto's server is threaded and its ``update_item`` reads, checks and writes the item in
steps, so two concurrent ``ADD``s on one item could both read the old count and one be
lost (seen once in 100 concurrent completion counts under load). DynamoDB makes each item
write atomic; one lock over the backend's item operations does the same here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

# DynamoDB's item-level operations: each one is atomic on AWS (see the module's docstring).
_DYNAMODB_ITEM_OPERATIONS = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)
_DYNAMODB_LOCK = threading.RLock()


def _one_at_a_time(operation: Callable[..., Any]) -> Callable[..., Any]:
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return operation(*args, **kwargs)

    serialised.__wrapped__ = operation  # type: ignore[attr-defined]
    return serialised


def serialise_dynamodb() -> None:
    """Make moto's DynamoDB item operations atomic, as DynamoDB's are (idempotent)."""
    for name in _DYNAMODB_ITEM_OPERATIONS:
        operation = getattr(DynamoDBBackend, name)
        if not hasattr(operation, "__wrapped__"):
            setattr(DynamoDBBackend, name, _one_at_a_time(operation))
