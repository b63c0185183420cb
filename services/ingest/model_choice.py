"""Which model scores an upload: its metadata, its folder, or the default setting;
and that model's row width, as publish recorded it."""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from services.ingest.upload import Upload
from shared import aws, model_registry
from shared.errors import InputError
from shared.model_card import ModelCard
from shared.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "setting BYOM_DEFAULT_MODEL"


def choose_model(upload: Upload) -> model_registry.ModelRef | None:
    """The registry model and version the upload chose, None for the default model.

    S3 metadata ``byom-model: name`` or ``name:version`` chooses explicitly: a
    model (or version) not in the registry fails the job. Without it, an upload
    under ``input/<name>/`` chooses ``<name>`` when the registry has it; any other
    folder is only a folder. Neither: ``BYOM_DEFAULT_MODEL`` when set (a multi-model
    endpoint has no model of its own), else None. No version: the latest, in
    natural order.
    """
    settings = get_settings()
    text = (upload.options.model or "").strip()
    folder, sep, _ = upload.key.removeprefix(settings.input_prefix).partition("/")
    if not text and sep:
        chosen = _registry_model(upload, folder, explicit=False)
        if chosen is not None:
            return chosen
    if not text and settings.default_model:
        return _registry_model(upload, settings.default_model, explicit=True, what=DEFAULT_MODEL)
    if not text:
        return None
    return _registry_model(upload, text, explicit=True)


def _registry_model(
    upload: Upload,
    text: str,
    *,
    explicit: bool,
    what: str = f"metadata {model_registry.MODEL_METADATA}",
) -> model_registry.ModelRef | None:
    """`text` (`name` or `name:version`) resolved in the registry. Explicit (metadata or
    the default setting): not found fails the job, naming `what`; a folder name that is
    no model's is only a folder (None)."""
    settings = get_settings()
    registry = f"s3://{upload.bucket}/{settings.models_prefix}"
    try:
        ref = model_registry.parse_ref(text)
    except ValueError as exc:
        if not explicit:
            return None
        raise InputError(upload.uri, f"{what}: {exc}") from None
    try:
        found = model_registry.versions(aws.s3(), upload.bucket, settings.models_prefix, ref.name)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status != 403:
            raise
        if not explicit:  # a role without the registry grant: folders stay folders
            log.warning("cannot list the model registry", extra={"registry": registry})
            return None
        raise InputError(
            upload.uri,
            f"S3 denied listing the model registry {registry}; grant the ingest role "
            f"s3:ListBucket with prefix {settings.models_prefix}*",
        ) from exc
    if not found:
        if not explicit:
            return None
        raise InputError(
            upload.uri,
            f"model {ref.name!r} is not in the model registry {registry} (no "
            f"{ref.name}/<version>/{model_registry.PACKAGE_FILE}); publish it with "
            f"python -m model.publish, or fix {what}",
        )
    if ref.version is None:
        return model_registry.ModelRef(ref.name, model_registry.latest(found))
    if ref.version not in found:
        raise InputError(
            upload.uri,
            f"model {ref.name!r} has no version {ref.version!r} in the model registry "
            f"{registry}; published: {', '.join(found)}",
        )
    return ref


def model_columns(
    upload: Upload, chosen: model_registry.ModelRef | None, card: ModelCard | None = None
) -> int:
    """The row width of the model the job chose, as publish recorded it; else the setting."""
    settings = get_settings()
    if chosen is None:
        return settings.feature_count
    if card is not None and card.feature_count is not None:
        return card.feature_count
    try:
        recorded = model_registry.feature_count(
            aws.s3(), upload.bucket, settings.models_prefix, chosen
        )
    except ClientError as exc:
        # Without s3:GetObject on the registry the width is not known here; the
        # setting applies, as for the default model.
        log.warning("cannot read the model's width", extra={"error": str(exc)})
        return settings.feature_count
    return recorded or settings.feature_count
