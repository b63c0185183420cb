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

A package may hold its container settings, the member `.byom-container.json`
(model/server/container_settings.py): the image it would run in on SageMaker
(model/server/containers.py picks that image's serving defaults) and the
environment its inference script sees (`SAGEMAKER_PROGRAM` among it). It is read
from the extracted folder before the model loads, whichever way the package came
(fetched here, or extracted by SageMaker and added with `add`); a package without
it means byom's defaults, one that breaks the schema makes the target
unloadable, with the rule.

On a SageMaker multi-model endpoint SageMaker fetches and extracts each package
itself and tells the container what to load (`model/server/mme_api.py`): `add`,
`peek` and `remove` serve that API from the same bounded LRU. Those models'
directories are SageMaker's, so unloading one leaves its files alone.
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
from dataclasses import dataclass
from pathlib import Path

from model.errors import ByomModelError
from model.flavors import Model, ModelLoadError
from model.package import PackageLimits, is_archive, load_package, prepare
from model.server.container_settings import (
    MEMBER,
    NONE,
    ContainerSettings,
    ContainerSettingsError,
    read_settings,
)

log = logging.getLogger(__name__)

# SageMaker's TargetModel: a relative key; here also no "..", no backslash.
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,1023}")


class TargetMissing(ByomModelError, LookupError):
    """The target model has no package under the model data prefix."""


class TargetUnloadable(ByomModelError):
    """The target model's package is there but cannot be loaded; says why."""


class AlreadyLoaded(ByomModelError):
    """`add` was asked for a name that is loaded already."""


@dataclass
class _Entry:
    model: Model
    url: str  # where it was loaded from
    folder: Path | None  # files of ours to remove on unloading; None: not ours
    container: ContainerSettings = NONE  # from its package; none: byom's defaults


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
        prefix: str | None,
        cache_dir: Path | None,
        max_models: int,
        *,
        allow_pickle: bool = False,
        allow_code: bool = False,
        threads: int = 1,
        limits: PackageLimits | None = None,
        fetch: Fetch = s3_fetch,
    ) -> None:
        # None: no registry to fetch targets from, only models added with `add`.
        self.prefix = prefix if prefix is None or prefix.endswith("/") else prefix + "/"
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
        self._loaded: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def url(self, target: str) -> str:
        if self.prefix is None:
            raise TargetMissing(
                f"target model {target!r} not found: no model data prefix to fetch it from "
                "(BYOM_MODEL_DATA_PREFIX); load it with POST /models"
            )
        return self.prefix + target

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def listing(self) -> list[tuple[str, str]]:
        """(name, where it was loaded from) of every loaded model, least recently used first."""
        with self._lock:
            return [(name, entry.url) for name, entry in self._loaded.items()]

    def peek(self, name: str) -> tuple[Model, str] | None:
        """The loaded model of that name and its URL (now the most recently used), or None."""
        found = self.peek_served(name)
        return None if found is None else (found[0], found[1])

    def peek_served(self, name: str) -> tuple[Model, str, ContainerSettings] | None:
        """As `peek`, with the model's container settings."""
        with self._lock:
            entry = self._loaded.get(name)
            if entry is None:
                return None
            self._loaded.move_to_end(name)
            return entry.model, entry.url, entry.container

    def add(self, name: str, path: Path) -> Model:
        """Load the package at `path` (a directory, or an archive) as `name`.

        `AlreadyLoaded` if `name` is loaded; `TargetUnloadable` with the package's
        reason. Past `max_models`, the least recently used model is unloaded.
        """
        with self._lock:
            if name in self._loaded:
                raise AlreadyLoaded(name)
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:
            with self._lock:
                if name in self._loaded:
                    raise AlreadyLoaded(name)
            try:
                entry = self._load_path(name, path)
            finally:
                with self._lock:
                    self._loading.pop(name, None)
            self._insert(name, entry)
        return entry.model

    def remove(self, name: str) -> bool:
        """Unload `name`; False if it was not loaded."""
        with self._lock:
            entry = self._loaded.pop(name, None)
        if entry is None:
            return False
        log.info("unloaded model %s", name)
        if entry.folder is not None:
            shutil.rmtree(entry.folder, ignore_errors=True)
        return True

    def _insert(self, name: str, entry: _Entry) -> None:
        with self._lock:
            self._loaded[name] = entry
            evicted = []
            while len(self._loaded) > self.max_models:
                evicted.append(self._loaded.popitem(last=False))
        for old_name, old in evicted:
            log.info("unloaded target model %s (BYOM_MAX_MODELS=%d)", old_name, self.max_models)
            if old.folder is not None:
                shutil.rmtree(old.folder, ignore_errors=True)

    def _load_path(self, name: str, path: Path) -> _Entry:
        folder = None
        if is_archive(path) and path.is_file():  # extracted into a folder of ours
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="model-", dir=self.cache_dir))
        try:
            model, container = self._load_package(path, folder, f"model {name!r}")
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("loaded model %s from %s: %s", name, path, model.description)
        return _Entry(model, str(path), folder, container)

    def _load_package(
        self, path: Path, workdir: Path | None, what: str
    ) -> tuple[Model, ContainerSettings]:
        """The package at `path` (an archive is extracted under `workdir`) and the
        container settings it holds; `TargetUnloadable` saying why not."""
        try:
            model_dir = prepare(path, workdir or path.parent, self.limits)
            container = read_settings(model_dir) if model_dir.is_dir() else NONE
            model = load_package(
                model_dir,
                allow_pickle=self.allow_pickle,
                threads=self.threads,
                limits=self.limits,
                allow_code=self.allow_code,
                environment=container.environment,
                image=container.image,
            )
        except ContainerSettingsError as exc:
            raise TargetUnloadable(f"{what}: {MEMBER}: {exc}") from exc
        except ModelLoadError as exc:
            raise TargetUnloadable(f"{what} cannot be loaded: {exc}") from exc
        return model, container

    def get(self, target: str) -> Model:
        """The model for `target`, loaded on first use."""
        return self.served(target)[0]

    def served(self, target: str) -> tuple[Model, ContainerSettings]:
        """The model for `target` and its container settings, loaded on first use."""
        if not _TARGET.fullmatch(target) or ".." in target.split("/"):
            raise TargetMissing(f"{target!r} is not a valid target model name")
        with self._lock:
            if target in self._loaded:
                self._loaded.move_to_end(target)
                entry = self._loaded[target]
                return entry.model, entry.container
            loading = self._loading.setdefault(target, threading.Lock())
        with loading:  # one load per target, however many requests wait for it
            with self._lock:
                if target in self._loaded:
                    self._loaded.move_to_end(target)
                    entry = self._loaded[target]
                    return entry.model, entry.container
            try:
                entry = self._load(target)
            finally:
                with self._lock:
                    self._loading.pop(target, None)
            self._insert(target, entry)
        return entry.model, entry.container

    def _load(self, target: str) -> _Entry:
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
            model, container = self._load_package(
                archive, folder / "extracted", f"target model {target!r}"
            )
            archive.unlink()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        image = f" (image {container.image})" if container.image else ""
        log.info("loaded target model %s%s: %s", target, image, model.description)
        return _Entry(model, self.url(target), folder, container)
