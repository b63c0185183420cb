"""SageMaker's errors, worded as SageMaker words them.

A constraint failure reads "1 validation error detected: Value 'x' at
'transformInput.splitType' failed to satisfy constraint: Member must satisfy enum
value set: [None, Line, RecordIO, TFRecord]" (AWS's validation layer: members in
lower camel case, list items as ``tags.1.member``, several failures joined by
"; "). The error classes carry the ``__type`` a client maps to its exception.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from shared.errors import ByomError

# How many failures one message lists (AWS lists a few, not all).
_MAX_LISTED = 10


class SageMakerError(ByomError):
    """An error SageMaker's API answers with: HTTP 400 and ``__type``."""

    error_type = "ValidationException"
    status = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class RequestInvalid(SageMakerError):
    error_type = "ValidationException"


class ResourceNotFound(SageMakerError):
    error_type = "ResourceNotFound"


class ResourceInUse(SageMakerError):
    error_type = "ResourceInUse"


class ResourceLimitExceeded(SageMakerError):
    error_type = "ResourceLimitExceeded"


def _member(name: str) -> str:
    return name[:1].lower() + name[1:]


def member_path(location: tuple[int | str, ...]) -> str:
    """A pydantic location as AWS names it: ``transformInput.dataSource``, ``tags.1.member.key``."""
    parts: list[str] = []
    for index, step in enumerate(location):
        if isinstance(step, int):
            parts.append(f"{step + 1}.member")
        elif step == "[key]" or (index > 0 and _is_map_key(location, index)):
            break  # a map's key or value: AWS names the map itself
        else:
            parts.append(_member(step))
    return ".".join(parts)


def _is_map_key(location: tuple[int | str, ...], index: int) -> bool:
    # pydantic locates a map's value by its key: ('Environment', 'MY_KEY').
    return location[index - 1] == "Environment"


def shown(value: Any) -> str:
    """A value as AWS shows it in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "'" + str(value).lower() + "'"
    if isinstance(value, int | float):
        return "'" + str(value) + "'"
    if isinstance(value, dict):
        return "'{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}'"
    if isinstance(value, list):
        return "'[" + ", ".join(str(v) for v in value) + "]'"
    return f"'{value}'"


def _enum(expected: str) -> str:
    return "[" + ", ".join(re.findall(r"'([^']*)'", expected)) + "]"


def _pattern(anchored: str) -> str:
    inner = anchored.removeprefix("^(?:").removesuffix(")$")
    return "^" + inner


def _constraint(error: Any) -> str:
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx", {})
    if kind == "missing":
        return "Member must not be null"
    if kind == "string_pattern_mismatch":
        return f"Member must satisfy regular expression pattern: {_pattern(ctx['pattern'])}"
    if kind in ("string_too_long", "too_long"):
        return f"Member must have length less than or equal to {ctx['max_length']}"
    if kind in ("string_too_short", "too_short"):
        return f"Member must have length greater than or equal to {ctx['min_length']}"
    if kind in ("literal_error", "enum"):
        return f"Member must satisfy enum value set: {_enum(ctx['expected'])}"
    if kind == "greater_than_equal":
        return f"Member must have value greater than or equal to {ctx['ge']}"
    if kind == "less_than_equal":
        return f"Member must have value less than or equal to {ctx['le']}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = kind.removesuffix("_type").removesuffix("_parsing")
        return f"Member must be of type {expected}"
    return f"Member must satisfy constraint: {error['msg']}"


def constraint_message(failures: list[tuple[Any, str, str]]) -> str:
    """``failures`` of (value, member path, constraint) as one AWS message."""
    count = len(failures)
    head = f"{count} validation error{'s' if count != 1 else ''} detected: "
    return head + "; ".join(
        f"Value {shown(value)} at '{path}' failed to satisfy constraint: {constraint}"
        for value, path, constraint in failures[:_MAX_LISTED]
    )


def _in_map(location: tuple[int | str, ...]) -> str | None:
    if "[key]" in location:
        return "keys"
    for index in range(1, len(location)):
        if _is_map_key(location, index):
            return "value"
    return None


def coral_message(exc: ValidationError, body: dict[str, Any] | None = None) -> str:
    failures: list[tuple[Any, str, str]] = []
    for error in exc.errors():
        location = tuple(error["loc"])
        constraint = _constraint(error)
        value = None if error["type"] == "missing" else error.get("input")
        where = _in_map(location)
        if where is not None:
            map_path = member_path(location)
            value = _lookup(body, location[: len(map_path.split("."))]) if body else value
            noun = "Map keys" if where == "keys" else "Map value"
            constraint = f"{noun} must satisfy constraint: [{constraint}]"
        failures.append((value, member_path(location), constraint))
    return constraint_message(failures)


def _lookup(body: dict[str, Any], location: tuple[int | str, ...]) -> Any:
    value: Any = body
    for step in location:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value
