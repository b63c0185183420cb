"""Several models behind one server, as a SageMaker multi-model endpoint hosts them.

A request naming a target model (`X-Amzn-SageMaker-Target-Model: fraud/3/model.tar.gz`,
what botocore sends for `invoke_endpoint(TargetModel=...)`) is served by the
package at `<model data prefix><target>`. The first request fetches it (boto3,
so `AWS_ENDPOINT_URL` points it at a local S3), checks and extracts it and loads
it with `model/package.py`; later ones find it loaded. At most `max_models` stay
loaded: past that the least recently used is unloaded and its files removed.

A target that is not there raises `TargetMissing` (the server answers 404
ValidationError, as SageMaker does); one that is there but does not load raises
`TargetUnloadable` with the package's reason. Neither is cached, so a package
published later is found.
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from model.flavors import Model, ModelLoadError
from model.package import PackageLimits, load_package, prepare

log = logging.getLogger(__name__)

# SageMaker's TargetModel: a relative key; here also no "..", no backslash.
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,1023}")


class TargetMissing(LookupError):
    """The target model has no package under the model data prefix."""


class TargetUnloadable(Exception):
    """The target model's package is there but cannot be loaded; says why."""


Fetch = Callable[[str, Path], None]  # (URL of the package, local file to write)


def s3_fetch(url: str, out: Path) -> None:
    """Download `s3://bucket/key` to `out`; `TargetMissing` for a missing object."""
    import boto3  # only multi-model hosting needs it
    from botocore.exceptions import ClientError

    bucket, _, key = url.removeprefix("s3://").partition("/")
    try:
        boto3.client("s3").download_file(bucket, key, str(out))
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
            raise TargetMissing(url) from exc
        raise


class ModelCache:
    """Loaded target models, least recently used first; safe to call from many threads."""

    def __init__(
        self,
        prefix: str,
        cache_dir: Path | None,
        max_models: int,
        *,
        allow_pickle: bool = False,
        allow_code: bool = False,
        threads: int = 1,
        limits: PackageLimits | None = None,
        fetch: Fetch = s3_fetch,
    ) -> None:
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        if cache_dir is None:  # a temporary one, removed when the process exits
            cache_dir = Path(tempfile.mkdtemp(prefix="byom-models-"))
            atexit.register(shutil.rmtree, cache_dir, ignore_errors=True)
        self.cache_dir = cache_dir
        self.max_models = max_models
        self.allow_pickle = allow_pickle
        self.allow_code = allow_code  # a target model's code/inference.py, if opted in
        self.threads = threads
        self.limits = limits
        self.fetch = fetch
        self._loaded: OrderedDict[str, tuple[Model, Path]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def url(self, target: str) -> str:
        return self.prefix + target

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def get(self, target: str) -> Model:
        """The model for `target`, loaded on first use."""
        if not _TARGET.fullmatch(target) or ".." in target.split("/"):
            raise TargetMissing(f"{target!r} is not a valid target model name")
        with self._lock:
            if target in self._loaded:
                self._loaded.move_to_end(target)
                return self._loaded[target][0]
            loading = self._loading.setdefault(target, threading.Lock())
        with loading:  # one load per target, however many requests wait for it
            with self._lock:
                if target in self._loaded:
                    self._loaded.move_to_end(target)
                    return self._loaded[target][0]
            try:
                model, folder = self._load(target)
            finally:
                with self._lock:
                    self._loading.pop(target, None)
            with self._lock:
                self._loaded[target] = (model, folder)
                evicted = []
                while len(self._loaded) > self.max_models:
                    evicted.append(self._loaded.popitem(last=False))
        for name, (_, old) in evicted:
            log.info("unloaded target model %s (BYOM_MAX_MODELS=%d)", name, self.max_models)
            shutil.rmtree(old, ignore_errors=True)
        return model

    def _load(self, target: str) -> tuple[Model, Path]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="target-", dir=self.cache_dir))
        try:
            archive = folder / "model.tar.gz"
            url = self.url(target)
            try:
                self.fetch(url, archive)
            except TargetMissing:
                raise TargetMissing(
                    f"target model {target!r} not found: no object at {url}"
                ) from None
            try:
                model_dir = prepare(archive, folder / "extracted", self.limits)
                model = load_package(
                    model_dir,
                    allow_pickle=self.allow_pickle,
                    threads=self.threads,
                    allow_code=self.allow_code,
                )
            except ModelLoadError as exc:
                raise TargetUnloadable(f"target model {target!r} cannot be loaded: {exc}") from exc
            archive.unlink()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("loaded target model %s: %s", target, model.description)
        return model, folder
