"""SageMaker's List* paging: filter, sort, then a page of MaxResults and a NextToken.

The token is opaque to the client: here the offset of the next page, so a list
read page by page while nothing changes returns every item once.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from services.transform.wording import RequestInvalid

Item = TypeVar("Item")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise RequestInvalid("The NextToken is not valid: pass the one a list returned.") from None
    if not isinstance(offset, int) or offset < 0:
        raise RequestInvalid("The NextToken is not valid: pass the one a list returned.")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def page(
    items: Sequence[Item],
    sort_key: Callable[[Item], Any],
    *,
    descending: bool,
    max_results: int,
    next_token: str | None,
) -> tuple[list[Item], str | None]:
    ordered = sorted(items, key=sort_key, reverse=descending)
    start = _offset(next_token)
    chosen = ordered[start : start + max_results]
    following = start + max_results
    return chosen, (_token(following) if following < len(ordered) else None)


def within(moment: datetime, after: datetime | None, before: datetime | None) -> bool:
    """SageMaker's ...After / ...Before filters (both exclusive)."""
    if after is not None and not moment > after:
        return False
    return before is None or moment < before
