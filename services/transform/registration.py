"""A SageMaker model's package in byom's model registry, for the endpoint to load.

The model's ``PrimaryContainer.ModelDataUrl`` (a ``model.tar.gz``, a byom
package) is copied to ``<models prefix><ModelName>/<version>/model.tar.gz`` in
byom's bucket with ``.byom-container.json`` = ``{"image": Image, "environment":
...}`` inside it (services/transform/repack.py: why inside, and what it costs),
which the model server reads when it loads that target (the container's serving
defaults follow its image; the environment, with ``SAGEMAKER_PROGRAM`` and the
batch variables, reaches the model). The environment is the transform job's
merged one: the model's ``Environment``, the job's on top, then the batch
variables. The version is a digest of the source's ETag, the image and that
environment: the same model and job settings register once, and a changed
package or environment is a new target the endpoint loads afresh.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from services.transform.repack import MEMBER, RepackError, repack
from services.transform.requests import s3_location
from services.transform.wording import RequestInvalid
from shared.model_registry import package_key, target_model
from shared.settings import get_settings


def container_of(model_request: dict[str, Any]) -> dict[str, Any]:
    """The one container a model runs (PrimaryContainer, or a single Containers item)."""
    if primary := model_request.get("PrimaryContainer"):
        container: dict[str, Any] = primary
        return container
    containers = model_request.get("Containers") or []
    if len(containers) == 1:
        only: dict[str, Any] = containers[0]
        return only
    raise RequestInvalid(
        "byom runs a model of one container: give PrimaryContainer (an inference "
        f"pipeline of {len(containers)} containers is not supported)."
    )


def model_data(model_request: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the model's package; RequestInvalid when it has none byom reads."""
    container = container_of(model_request)
    url = container.get("ModelDataUrl")
    if not url and container.get("ModelDataSource"):
        raise RequestInvalid(
            "SageMaker Batch currently doesn't support Model entity with container definitions "
            "which use ModelDataSource attribute"
        )
    if not url:
        raise RequestInvalid(
            "byom serves a model from PrimaryContainer.ModelDataUrl, a model.tar.gz in S3; "
            "the model gives none."
        )
    if not url.startswith("s3://"):
        raise RequestInvalid(f"ModelDataUrl {url!r}: byom reads s3:// URIs only.")
    return s3_location(url)


def check_model_data(s3: Any, model_request: dict[str, Any]) -> None:
    """CreateModel's check that the model data is there (as SageMaker's)."""
    if not (container_of(model_request).get("ModelDataUrl")):
        return  # a model without data can be created; a transform job refuses it
    bucket, key = model_data(model_request)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        raise RequestInvalid(f"Could not find model data at s3://{bucket}/{key}.") from None


def version_of(etag: str, image: str | None, environment: dict[str, str]) -> str:
    payload = json.dumps(
        # The member names the layout: targets written with settings inside the
        # package never share a version with ones written before.
        {"etag": etag.strip('"'), "image": image, "environment": environment, "member": MEMBER},
        sort_keys=True,
    )
    return "sm-" + hashlib.sha256(payload.encode()).hexdigest()[:24]


def register(
    s3: Any, model_name: str, model_request: dict[str, Any], environment: dict[str, str]
) -> str:
    """Put the model's package in the registry (once per version) with `environment`
    (the job's merged one) and the model's image inside it; the endpoint's
    TargetModel for it."""
    settings = get_settings()
    container = container_of(model_request)
    bucket, key = model_data(model_request)
    try:
        source = s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        raise RequestInvalid(f"Could not find model data at s3://{bucket}/{key}.") from None
    image: str | None = container.get("Image")
    version = version_of(source["ETag"], image, environment)
    target = package_key(settings.models_prefix, model_name, version)
    try:
        s3.head_object(Bucket=settings.bucket, Key=target)
    except ClientError:
        try:
            repack(s3, (bucket, key), (settings.bucket, target), image, environment)
        except RepackError as exc:
            raise RequestInvalid(f"ModelDataUrl s3://{bucket}/{key}: {exc}") from None
    return target_model(model_name, version)
