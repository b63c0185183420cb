"""A transform job's input objects, in SageMaker's order, and where each one's output goes.

``S3Prefix``: every object whose key starts with the prefix, in key order (as S3
lists them). ``ManifestFile``: a JSON array, ``[{"prefix": "s3://bucket/path/"},
"relative/key1", ...]``, each entry an object under that prefix, in the
manifest's order.

An object's output is ``<S3OutputPath>/<its key relative to the input>.out``,
"relative" meaning after the input prefix taken as a folder when the key lies in
that folder, else after the prefix's last ``/``: ``s3://b/in/``, ``s3://b/in`` and
``s3://b/in/a.csv`` all give ``a.csv.out`` for ``in/a.csv``; ``s3://b/in`` gives
``inside/d.csv.out`` for ``inside/d.csv``; a manifest's entries keep their own
relative paths. The folder rule is what SageMaker does: its scikit-learn Iris
example notebook passes ``s3://<bucket>/<prefix>/batch_input`` (no slash, as the
SDK's ``upload_data`` returns it) and its printed output lists
``<output path>/iris_sample_X_0.csv.out``; the API reference's example, which
repeats the input's prefix, is settled by that working example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from services.transform.requests import s3_location
from services.transform.wording import RequestInvalid

# A manifest is read whole: this bounds it (a million short keys fit).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


class NoInput(RequestInvalid):
    """The data source names no object: the job fails with this reason."""


@dataclass(frozen=True)
class InputObject:
    bucket: str
    key: str
    etag: str
    size: int
    relative: str  # the key relative to the input, for the output's name


def output_key(output_path: str, relative: str) -> tuple[str, str]:
    """(bucket, key) of an object's ``.out`` under ``S3OutputPath``."""
    bucket, prefix = s3_location(output_path)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, f"{prefix}{relative}.out"


def relative_name(prefix: str, key: str) -> str:
    """`key`'s name relative to the S3Prefix `prefix` (see the module's docstring)."""
    if prefix and not prefix.endswith("/") and key.startswith(prefix + "/"):
        return key[len(prefix) + 1 :]
    return key[prefix.rfind("/") + 1 :]


def _no_objects(uri: str) -> NoInput:
    # SageMaker's own wording for an empty prefix.
    return NoInput(
        f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure '
        "that the bucket exists in the selected region, that objects exist under that S3 "
        'prefix, and that the role has "s3:ListBucket" permissions on the bucket.'
    )


def under_prefix(s3: Any, uri: str, limit: int) -> list[InputObject]:
    """Every object under ``uri`` in key order (folder markers, keys ending in ``/``,
    are not objects to transform); :class:`NoInput` when there is none."""
    bucket, prefix = s3_location(uri)
    found: list[InputObject] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                found.append(
                    InputObject(
                        bucket, key, obj["ETag"].strip('"'), obj["Size"], relative_name(prefix, key)
                    )
                )
                if len(found) > limit:
                    raise RequestInvalid(
                        f'S3 URL "{uri}" holds more than {limit} objects, byom\'s limit per '
                        "transform job: split the input across several jobs."
                    )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise _no_objects(uri) from None
        raise
    if not found:
        raise _no_objects(uri)
    return found


def from_manifest(s3: Any, uri: str, limit: int) -> list[InputObject]:
    """The objects a manifest file names, in its order."""
    bucket, key = s3_location(uri)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        raise RequestInvalid(f'Could not read the manifest file "{uri}".') from None
    if head["ContentLength"] > MAX_MANIFEST_BYTES:
        raise RequestInvalid(f'The manifest file "{uri}" is over {MAX_MANIFEST_BYTES} bytes.')
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        entries = json.loads(body)
    except ValueError as exc:
        raise RequestInvalid(f'The manifest file "{uri}" is not valid JSON: {exc}') from None
    if (
        not isinstance(entries, list)
        or not entries
        or not isinstance(entries[0], dict)
        or not isinstance(entries[0].get("prefix"), str)
        or not all(isinstance(entry, str) for entry in entries[1:])
    ):
        raise RequestInvalid(
            f'The manifest file "{uri}" must be a JSON array: [{{"prefix": "s3://bucket/path/"}}, '
            '"relative/key", ...].'
        )
    if len(entries) - 1 > limit:
        raise RequestInvalid(
            f'The manifest file "{uri}" names more than {limit} objects, byom\'s limit per '
            "transform job: split it across several jobs."
        )
    source_bucket, prefix = s3_location(entries[0]["prefix"])
    found: list[InputObject] = []
    for relative in entries[1:]:
        object_key = prefix + relative
        try:
            obj = s3.head_object(Bucket=source_bucket, Key=object_key)
        except ClientError:
            raise RequestInvalid(
                f'The manifest file "{uri}" names s3://{source_bucket}/{object_key}, which '
                "could not be read."
            ) from None
        found.append(
            InputObject(
                source_bucket,
                object_key,
                obj["ETag"].strip('"'),
                obj["ContentLength"],
                relative,
            )
        )
    if not found:
        raise _no_objects(uri)
    return found
