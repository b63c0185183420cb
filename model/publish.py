"""Publish a model package to the registry in the bucket, checked first.

    python -m model.publish PATH --name NAME --version V [--bucket B] [--prefix models/]

PATH is a package directory (packed as `model.pack` does) or a `model.tar.gz`.
The archive that will be uploaded is checked and loaded exactly as the model
server loads it (`model/package.py`) and scores one sample row (zeros, the
model's feature count); only then is it uploaded to
`s3://B/<prefix><NAME>/<V>/model.tar.gz`, in one PUT or multipart upload,
which S3 makes visible only when complete. Its model card (`card.json`
beside it: the manifest's columns, outputs, batch limits and processing
defaults, `shared/model_card.py`) is written first, so a visible package
always has its card. A refused package is never
uploaded. Versions are immutable: publishing one that exists is refused, since
endpoints keep loaded models by name.

boto3 finds its endpoint as every byom process does: `AWS_ENDPOINT_URL` for the
local stack, the AWS default otherwise. The bucket defaults to `BYOM_BUCKET`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import ByomModelError
from model.flavors import ModelLoadError
from model.flavors.detector import VisionModel
from model.manifest import MANIFEST_FILE, Manifest, read_manifest
from model.package import is_archive, load_package, pack, prepare
from shared import model_registry
from shared.model_card import ModelCard
from shared.processing import CONTENT_TYPES
from shared.selectors import SelectorError, parse_selector
from shared.settings import get_settings


class PublishError(ByomModelError):
    """The package or the registry refused the publication; the message says why."""


def check(archive: Path, workdir: Path, *, allow_pickle: bool = False) -> ModelCard:
    """Load `archive` as the server would and score one row of zeros; its card
    (the row width is None when the model does not say).

    Raises `PublishError` with the package's reason.
    """
    try:
        directory = prepare(archive, workdir)
        manifest = read_manifest(directory) or Manifest()
        model = load_package(directory, allow_pickle=allow_pickle)
    except ModelLoadError as exc:
        # The package's own errors usually name the archive already.
        reason = str(exc)
        raise PublishError(reason if str(archive) in reason else f"{archive}: {reason}") from exc
    if isinstance(model, VisionModel):
        try:  # one black image, the model's own input size
            model.run(np.zeros((1, model.spec.height, model.spec.width, 3), dtype=np.uint8))
        except Exception as exc:
            raise PublishError(
                f"{archive}: one black sample image failed: {type(exc).__name__}: {exc}"
            ) from exc
        return card_of(manifest, str(model.description), None)
    columns = model.feature_count or get_settings().feature_count
    try:
        scores = np.asarray(model.predict(np.zeros((1, columns), dtype=np.float32)))
    except Exception as exc:
        raise PublishError(
            f"{archive}: scoring one sample row of {columns} zeros failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if scores.shape[:1] != (1,) or not _finite(scores):
        raise PublishError(
            f"{archive}: one sample row of zeros gave {scores.shape} scores {scores.tolist()!r}; "
            "expected one finite score (or one row of them)"
        )
    return card_of(manifest, str(model.description), model.feature_count)


def _finite(scores: np.ndarray) -> bool:
    """Every number of the answer is finite; class names (text labels) may stand beside them."""
    if scores.dtype.kind in "biuf":
        return bool(np.isfinite(scores.astype(np.float64)).all())
    try:
        return all(
            isinstance(value, str) or bool(np.isfinite(float(value))) for value in scores.ravel()
        )
    except (TypeError, ValueError):
        return False


def card_of(manifest: Manifest, description: str, feature_count: int | None) -> ModelCard:
    """The card ingest reads: the manifest resolved against the loaded model.

    Raises `PublishError` for a `[processing]` default ingest would refuse.
    """
    processing = manifest.processing
    for key in ("input_filter", "output_filter"):
        text = getattr(processing, key)
        if text is not None:
            try:
                parse_selector(text)
            except SelectorError as exc:
                raise PublishError(f"{MANIFEST_FILE} processing.{key}={text!r}: {exc}") from None
    accept = processing.accept
    if accept is not None and accept.strip().lower() not in CONTENT_TYPES:
        raise PublishError(
            f"{MANIFEST_FILE} processing.accept={accept!r}: use one of {', '.join(CONTENT_TYPES)}"
        )
    columns = manifest.input.columns
    return ModelCard(
        description=description[:2048],
        feature_count=feature_count,
        feature_names=tuple(columns) if columns is not None else None,
        drop=tuple(manifest.input.drop),
        output_columns=tuple(manifest.output.columns),
        threshold=manifest.output.threshold,
        classes=tuple(manifest.output.classes) if manifest.output.classes else None,
        max_rows=manifest.batch.max_rows,
        max_bytes=manifest.batch.max_bytes,
        processing=manifest.processing.model_dump(),
    )


def publish(
    path: Path,
    name: str,
    version: str,
    *,
    bucket: str | None = None,
    prefix: str | None = None,
    s3: Any = None,
    allow_pickle: bool = False,
) -> str:
    """Check the package at `path` and upload it; the `s3://` URL of the published package."""
    try:
        model_registry.check_part("model name", name)
        model_registry.check_part("model version", version)
    except ValueError as exc:
        raise PublishError(str(exc)) from None
    settings = get_settings()
    bucket = bucket or settings.bucket
    prefix = settings.models_prefix if prefix is None else prefix
    key = model_registry.package_key(prefix, name, version)
    url = f"s3://{bucket}/{key}"
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=settings.region)
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="byom-publish-") as scratch:
        work = Path(scratch)
        if path.is_dir():
            archive = work / "model.tar.gz"
            try:
                pack(path, archive)
            except ModelLoadError as exc:
                raise PublishError(str(exc)) from exc
        elif path.is_file() and path.name.lower().endswith((".tar.gz", ".tgz")):
            archive = path
        else:
            kind = "an uncompressed .tar" if is_archive(path) else "not a directory or .tar.gz"
            raise PublishError(f"{path}: {kind}; publish a package directory or a model.tar.gz")
        card = check(archive, work / "extracted", allow_pickle=allow_pickle)
        columns = card.feature_count
        if version in model_registry.versions(s3, bucket, prefix, name):
            raise PublishError(f"{url} exists; versions are immutable, publish a new version")
        # The card first: whoever sees the package can read its card.
        s3.put_object(
            Bucket=bucket,
            Key=model_registry.card_key(prefix, name, version),
            Body=card.model_dump_json().encode(),
            ContentType="application/json",
        )
        extra: dict[str, Any] = {"ContentType": "application/gzip"}
        if columns:
            extra["Metadata"] = {model_registry.FEATURE_COUNT_METADATA: str(columns)}
        s3.upload_file(str(archive), bucket, key, ExtraArgs=extra)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.publish",
        description="Check a model package and publish it to the registry in the bucket.",
    )
    parser.add_argument("path", type=Path, help="a package directory or a model.tar.gz")
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--bucket", help="default: BYOM_BUCKET")
    parser.add_argument("--prefix", help="the registry prefix (default: BYOM_MODELS_PREFIX)")
    parser.add_argument("--allow-pickle", action="store_true")
    args = parser.parse_args(argv)
    try:
        url = publish(
            args.path,
            args.name,
            args.version,
            bucket=args.bucket,
            prefix=args.prefix,
            allow_pickle=args.allow_pickle,
        )
    except PublishError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
