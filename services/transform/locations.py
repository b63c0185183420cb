"""Where a transform job may read and write, checked before anything runs.

byom's data bucket has prefixes of its own: an object written under ``input/``
starts a byom upload job of its own (the bucket notifies ingest), ``staging/``
holds jobs' working files and ``models/`` is the model registry. A transform job
that read its input there would run each object twice (once as an upload), and
one that wrote its ``.out`` files there would start upload jobs on its answers or
write into byom's own state. So CreateTransformJob refuses, with a
ValidationException that says why and what to use instead:

- an input location (``S3Uri``; a manifest's objects; an ``S3Prefix`` that would
  list any of these prefixes, such as the bucket's root) in the data bucket under
  ``input/``, ``staging/`` or ``models/``;
- an output location (``S3OutputPath``, ``DataCaptureConfig.DestinationS3Uri``,
  and every object's ``.out``) under the same three;
- with ``BYOM_TRANSFORM_BUCKETS`` set (comma-separated bucket names; the
  template sets the data bucket), any bucket not in it: on AWS the stack's roles
  reach only those. Empty (locally): any bucket.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.transform.requests import CreateTransformJob, s3_location
from services.transform.wording import RequestInvalid
from shared.settings import Settings, get_settings

INPUT_MEMBER = "TransformInput.DataSource.S3DataSource.S3Uri"
OUTPUT_MEMBER = "TransformOutput.S3OutputPath"
CAPTURE_MEMBER = "DataCaptureConfig.DestinationS3Uri"
INSTEAD = "a prefix of its own (for example transform/) or another bucket"


def transform_buckets(settings: Settings) -> frozenset[str]:
    """The buckets transform jobs may use; empty: any."""
    return frozenset(name.strip() for name in settings.transform_buckets.split(",") if name.strip())


def _reserved(settings: Settings) -> dict[str, str]:
    """byom's prefixes in the data bucket, and why each is byom's."""
    return {
        settings.input_prefix: "an object there starts a byom upload job of its own",
        settings.staging_prefix: "byom's jobs keep their working files there",
        settings.models_prefix: "it is byom's model registry",
    }


def _check_bucket(settings: Settings, what: str, uri: str, bucket: str) -> None:
    allowed = transform_buckets(settings)
    if allowed and bucket not in allowed:
        raise RequestInvalid(
            f"{what} {uri!r}: byom's transform jobs read and write only the buckets "
            f"{', '.join(sorted(allowed))} (BYOM_TRANSFORM_BUCKETS); put it in one of them."
        )


def _refuse(what: str, uri: str, bucket: str, prefix: str, why: str) -> RequestInvalid:
    return RequestInvalid(
        f"{what} {uri!r} is under s3://{bucket}/{prefix}, which byom keeps for itself: {why}. "
        f"Use {INSTEAD}."
    )


def check_input(what: str, uri: str, *, listed: bool) -> None:
    """An input location; `listed`: an ``S3Prefix``, every key starting with it."""
    settings = get_settings()
    bucket, key = s3_location(uri)
    _check_bucket(settings, what, uri, bucket)
    if bucket != settings.bucket:
        return
    for prefix, why in _reserved(settings).items():
        if key.startswith(prefix) or (listed and prefix.startswith(key)):
            raise _refuse(what, uri, bucket, prefix, why)


def check_output(what: str, uri: str) -> None:
    """An output location: a folder, or one object's key."""
    settings = get_settings()
    bucket, key = s3_location(uri)
    _check_bucket(settings, what, uri, bucket)
    if bucket != settings.bucket:
        return
    folder = key if not key or key.endswith("/") else key + "/"
    for prefix, why in _reserved(settings).items():
        if folder.startswith(prefix):
            raise _refuse(what, uri, bucket, prefix, why)


def check_request(request: CreateTransformJob) -> None:
    """The request's own locations (CreateTransformJob refuses before anything runs)."""
    source = request.TransformInput.DataSource.S3DataSource
    check_input(INPUT_MEMBER, source.S3Uri, listed=source.S3DataType == "S3Prefix")
    check_output(OUTPUT_MEMBER, request.TransformOutput.S3OutputPath)
    if request.DataCaptureConfig is not None:
        check_output(CAPTURE_MEMBER, request.DataCaptureConfig.DestinationS3Uri)


def check_objects(inputs: Iterable[tuple[str, str]], outputs: Iterable[tuple[str, str]]) -> None:
    """Each object read (a manifest names its own) and each ``.out`` written."""
    for bucket, key in inputs:
        check_input("The input object", f"s3://{bucket}/{key}", listed=False)
    for bucket, key in outputs:
        check_output("The output object", f"s3://{bucket}/{key}")
