"""Publish a model package to the registry in the bucket, checked first.

    python -m model.publish PATH --name NAME --version V [--bucket B] [--prefix models/]

PATH is a package directory (packed as `model.pack` does) or a `model.tar.gz`.
The archive that will be uploaded is checked and loaded exactly as the model
server loads it (`model/package.py`) and scores one sample row (zeros, the
model's feature count); only then is it uploaded to
`s3://B/<prefix><NAME>/<V>/model.tar.gz`, in one PUT or multipart upload,
which S3 makes visible only when complete. A refused package is never
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

from model.flavors import ModelLoadError
from model.flavors.detector import VisionModel
from model.package import is_archive, load_package, pack, prepare
from shared import model_registry
from shared.errors import ByomError
from shared.settings import get_settings


class PublishError(ByomError):
    """The package or the registry refused the publication; the message says why."""


def check(archive: Path, workdir: Path, *, allow_pickle: bool = False) -> tuple[str, int | None]:
    """Load `archive` as the server would and score one row of zeros; its
    description and the row width it takes (None when the model does not say).

    Raises `PublishError` with the package's reason.
    """
    try:
        model = load_package(prepare(archive, workdir), allow_pickle=allow_pickle)
    except ModelLoadError as exc:
        raise PublishError(f"{archive}: {exc}") from exc
    if isinstance(model, VisionModel):
        try:  # one black image, the model's own input size
            model.run(np.zeros((1, model.spec.height, model.spec.width, 3), dtype=np.uint8))
        except Exception as exc:
            raise PublishError(
                f"{archive}: one black sample image failed: {type(exc).__name__}: {exc}"
            ) from exc
        return str(model.description), None
    columns = model.feature_count or get_settings().feature_count
    try:
        scores = np.asarray(model.predict(np.zeros((1, columns), dtype=np.float32)))
    except Exception as exc:
        raise PublishError(
            f"{archive}: scoring one sample row of {columns} zeros failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if scores.shape[:1] != (1,) or not np.isfinite(scores.astype(np.float64)).all():
        raise PublishError(
            f"{archive}: one sample row of zeros gave {scores.shape} scores {scores.tolist()!r}; "
            "expected one finite score (or one row of them)"
        )
    return str(model.description), model.feature_count


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
        _, columns = check(archive, work / "extracted", allow_pickle=allow_pickle)
        if version in model_registry.versions(s3, bucket, prefix, name):
            raise PublishError(f"{url} exists; versions are immutable, publish a new version")
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
