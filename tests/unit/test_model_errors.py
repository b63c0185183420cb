"""`model/` has one error root, under byom's own: one `except` tells refusals from bugs."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import model
from model.errors import ByomModelError
from shared.errors import ByomError


def model_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(model.__path__, "model.")
        if not info.name.endswith("__main__")
    ]


def test_every_error_class_in_model_derives_from_the_root() -> None:
    found = {}
    for name in model_modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("model."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    assert len(found) >= 10, sorted(found)  # the package, manifest, server and script errors
    strays = sorted(name for name, value in found.items() if not issubclass(value, ByomModelError))
    assert strays == []
    assert issubclass(ByomModelError, ByomError)


def test_existing_names_and_bases_keep_working() -> None:
    from model.flavors import BadRequest, ModelLoadError
    from model.inference_script import NotAcceptable, UnsupportedFormat
    from model.manifest import ManifestError, TooManyRows
    from model.package import PackageError
    from model.publish import PublishError
    from model.server.multi_model import AlreadyLoaded, TargetMissing, TargetUnloadable

    assert issubclass(BadRequest, ValueError)  # callers catching ValueError still do
    assert issubclass(TargetMissing, LookupError)
    for loading in (ManifestError, PackageError):
        assert issubclass(loading, ModelLoadError)
    for request in (UnsupportedFormat, NotAcceptable, TooManyRows):
        assert issubclass(request, BadRequest)
    for other in (PublishError, AlreadyLoaded, TargetUnloadable):
        assert issubclass(other, ByomModelError)
