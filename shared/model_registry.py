"""The model registry in the bucket: ``<models prefix><name>/<version>/model.tar.gz``.

A job chooses a model by name (the latest version) or ``name:version``; the
endpoint is asked for it as a SageMaker multi-model endpoint is, with
``TargetModel="<name>/<version>/model.tar.gz"`` relative to the endpoint's
model data prefix (the registry prefix). Versions are compared in natural
order: ``10`` comes after ``9``, ``1.10`` after ``1.9``.

Used by ingest (resolving a job's model) and ``python -m model.publish``; boto3
only, so it fits the Lambda bundle.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from botocore.exceptions import ClientError
from pydantic import ValidationError

from shared.model_card import CARD_FILE, MAX_CARD_BYTES, ModelCard

PACKAGE_FILE = "model.tar.gz"
# S3 metadata publish puts on a package: the row width its model takes, so ingest
# checks a job's rows against the model it chose, not one global setting.
FEATURE_COUNT_METADATA = "byom-feature-count"
# The S3 object metadata an upload chooses its model with: `name` or `name:version`.
MODEL_METADATA = "byom-model"
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ModelRef(NamedTuple):
    name: str
    version: str | None = None


def check_part(what: str, value: str) -> str:
    """`value` as a model name or version, or ValueError saying what one may hold."""
    if not _PART.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not valid: use letters, digits, '.', '_' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return value


def parse_ref(text: str) -> ModelRef:
    """``name`` or ``name:version``; ValueError when either part is not valid."""
    name, sep, version = text.strip().partition(":")
    check_part("model name", name)
    if sep:
        check_part("model version", version)
        return ModelRef(name, version)
    return ModelRef(name)


def target_model(name: str, version: str) -> str:
    """What the endpoint is asked for: the package's key relative to the registry prefix."""
    return f"{name}/{version}/{PACKAGE_FILE}"


def package_key(prefix: str, name: str, version: str) -> str:
    return f"{prefix}{target_model(name, version)}"


def natural_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key of natural order: runs of digits compare as numbers."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", version)
        if part
    )


def latest(versions: list[str]) -> str:
    return max(versions, key=natural_key)


def versions(s3: Any, bucket: str, prefix: str, name: str) -> list[str]:
    """The published versions of `name`: those with a package object, in natural order."""
    base = f"{prefix}{name}/"
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for obj in page.get("Contents", []):
            version, _, rest = obj["Key"][len(base) :].partition("/")
            if rest == PACKAGE_FILE and _PART.fullmatch(version):
                found.append(version)
    return sorted(found, key=natural_key)


def feature_count(s3: Any, bucket: str, prefix: str, ref: ModelRef) -> int | None:
    """The row width a published model takes, when publish recorded it."""
    assert ref.version is not None
    head = s3.head_object(Bucket=bucket, Key=package_key(prefix, ref.name, ref.version))
    value = head.get("Metadata", {}).get(FEATURE_COUNT_METADATA, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def card_key(prefix: str, name: str, version: str) -> str:
    return f"{prefix}{name}/{version}/{CARD_FILE}"


def card(s3: Any, bucket: str, prefix: str, ref: ModelRef) -> ModelCard | None:
    """The published model's card; None for a package published before cards.

    A card that is not valid raises ``ValueError`` with the reason: publish
    wrote it, so it is never silently ignored.
    """
    assert ref.version is not None
    key = card_key(prefix, ref.name, ref.version)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    if response.get("ContentLength", 0) > MAX_CARD_BYTES:
        raise ValueError(f"s3://{bucket}/{key}: the card is over {MAX_CARD_BYTES} bytes")
    try:
        return ModelCard.model_validate_json(response["Body"].read())
    except ValidationError as exc:
        raise ValueError(f"s3://{bucket}/{key}: not a valid model card: {exc}") from None
