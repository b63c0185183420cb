"""SageMaker inference scripts, run as the SageMaker inference toolkit runs them.

A package with `code/inference.py` (or the module `SAGEMAKER_PROGRAM` names in
`code/`) is served by its own functions instead of a flavor::

    def model_fn(model_dir): ...                       # once, at start-up
    def input_fn(body, content_type): ...              # request -> data
    def predict_fn(data, model): ...                   # data -> prediction
    def output_fn(prediction, accept): ...             # -> bytes/str, or (body, type)
    # or, instead of the three above:
    def transform_fn(model, body, content_type, accept): ...

Each function may take one more parameter, a `ScriptContext`. Missing input_fn,
predict_fn and output_fn fall back to the defaults of the container image the
model names (model/framework_handlers.py): the scikit-learn and XGBoost
containers supply all three (a script with only `model_fn` predicts with
`model.predict`), any other image the toolkit's input_fn and output_fn
(`text/csv`, `application/json` and `application/x-npy` to and from numpy
arrays, model/codecs.py) and no predict_fn. As in the toolkit, CSV and JSON
bodies reach the script as `str`, others as `bytes`, and a missing or `*/*`
Accept becomes `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (`application/json`).

A model's container settings (container.json, model/server/container_settings.py)
give it an environment: `SAGEMAKER_PROGRAM` picks the script, the script's own
module reads the variables through `os.environ`/`os.getenv` without the server's
environment changing (model/script_environment.py), and
`SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` is the Accept for a request without one.

Running a package's code is the operator's choice: `load_script` refuses unless
`allow_code` (`BYOM_ALLOW_MODEL_CODE=true`). With it, a `code/requirements.txt`
is installed into `code/.byom-lib` of the model directory, never into byom's own
environment; that folder and `code/` are on `sys.path` while the script is
imported and `model_fn` runs. Calls into one script are serialised, as each
toolkit worker process handles one request at a time.

A SageMaker endpoint runs with network isolation, so pip cannot reach an index
there: the image build installs the deployed package's requirements into
`BYOM_PREINSTALLED_LIB` beside a copy of the file they came from
(`model/server/Dockerfile`), and a package whose requirements are exactly those
uses that folder instead of running pip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from model.codecs import CSV, JSON, NPY
from model.codecs import NotAcceptable as NotAcceptable
from model.codecs import UnsupportedFormat as UnsupportedFormat
from model.codecs import decode as decode
from model.codecs import encode as encode
from model.flavors.base import BadRequest, ModelLoadError
from model.framework_handlers import TOOLKIT, FrameworkHandlers, handlers_for
from model.framework_handlers import default_input_fn as default_input_fn
from model.framework_handlers import default_output_fn as default_output_fn
from model.manifest import MANIFEST_FILE
from model.script_environment import script_builtins

CODE_DIR = "code"
DEFAULT_PROGRAM = "inference.py"
REQUIREMENTS = "requirements.txt"
LIB_DIR = ".byom-lib"
UTF8_TYPES = (CSV, JSON)
DEFAULT_ACCEPT = JSON
DEFAULT_ACCEPT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
ALLOW_SETTING = "BYOM_ALLOW_MODEL_CODE"
# Requirements installed when the image was built: <folder>/requirements.txt says which.
PREINSTALLED_SETTING = "BYOM_PREINSTALLED_LIB"
HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


@runtime_checkable
class RequestHandler(Protocol):
    """A model that reads request bodies and writes answers itself."""

    def handle(self, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]: ...


@dataclass
class ScriptContext:
    """What a handler that takes a trailing `context` gets: a small stand-in for the
    toolkit's MMS context."""

    model_dir: str
    system_properties: dict[str, Any] = field(default_factory=dict)
    request_content_type: str | None = None
    accept_header: str | None = None


# --- finding, installing and importing the script ----------------------------------


def script_path(model_dir: Path, program: str | None = None) -> Path | None:
    """The inference script of the package in `model_dir`, or None when it has none.

    `program` (`SAGEMAKER_PROGRAM`) names a module in `code/`, with or without `.py`.
    """
    code = Path(model_dir) / CODE_DIR
    if program is None:
        path = code / DEFAULT_PROGRAM
        return path if path.is_file() else None
    name = program if program.endswith(".py") else f"{program}.py"
    if "/" in name or "\\" in name or name.startswith("."):
        raise ModelLoadError(
            Path(model_dir), f"SAGEMAKER_PROGRAM={program!r}: name a module in {CODE_DIR}/"
        )
    path = code / name
    if not path.is_file():
        raise ModelLoadError(
            path, f"SAGEMAKER_PROGRAM={program!r} names a script the package does not have"
        )
    return path


def requirement_lines(path: Path) -> list[str]:
    """The lines of a requirements file that ask for something (not blank, not comments)."""
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line]


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def preinstalled_lib(requirements: Path, folder: str | None = None) -> Path | None:
    """The folder the image build installed `requirements` into, when it installed
    exactly these (the same requirement lines); else None."""
    folder = folder if folder is not None else os.environ.get(PREINSTALLED_SETTING, "")
    if not folder:
        return None
    lib = Path(folder)
    baked = lib / REQUIREMENTS
    if baked.is_file() and requirement_lines(baked) == requirement_lines(requirements):
        return lib
    return None


def install_requirements(code_dir: Path, run: Runner = subprocess.run) -> Path | None:
    """`code/requirements.txt` installed into `code/.byom-lib`; the folder, or None
    when there is nothing to install. Requirements the image build installed
    already are not installed again."""
    requirements = code_dir / REQUIREMENTS
    if not requirement_lines(requirements):
        return None
    baked = preinstalled_lib(requirements)
    if baked is not None:
        return baked
    target = code_dir / LIB_DIR
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--upgrade",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    result = run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout or "").strip().splitlines()
        tail = output[-1] if output else f"exit status {result.returncode}"
        # On an endpoint (no network), this means the image was built for other
        # requirements: the deploy script bakes the deployed package's into it.
        raise ModelLoadError(
            requirements,
            f"pip could not install it: {tail} (an endpoint without network access "
            "installs only the requirements its image was built with: redeploy with this "
            "package, infra/deploy.sh --model)",
        )
    return target


@contextmanager
def _on_path(folders: list[Path]) -> Iterator[None]:
    added = [str(folder) for folder in folders if str(folder) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


def _import(path: Path, environment: Mapping[str, str] | None = None) -> ModuleType:
    # A name of its own per script, so that two models' inference.py never meet in
    # sys.modules and neither shadows a module of byom's.
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"byom_script_{digest}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(path, "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    if environment:  # the model's variables, seen through `os` by this module only
        module.__dict__["__builtins__"] = script_builtins(environment)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise ModelLoadError(path, f"importing it failed: {type(exc).__name__}: {exc}") from exc
    return module


def _arity(function: Callable[..., Any], name: str, given: int, path: Path) -> int:
    """How many arguments to pass `function`: `given`, or `given` + the context."""
    taken = len(inspect.signature(function).parameters)
    if taken not in (given, given + 1):
        raise ModelLoadError(
            path, f"{name} takes {taken} arguments; expected {given} (or {given + 1} with context)"
        )
    return taken


def load_script(
    model_dir: Path,
    *,
    allow_code: bool = False,
    program: str | None = None,
    run: Runner = subprocess.run,
    environment: Mapping[str, str] | None = None,
    image: str | None = None,
) -> ScriptModel | None:
    """The package's inference script as a model, or None when the package has none.

    `environment` is what the script sees in `os.environ` besides the process's
    variables; its `SAGEMAKER_PROGRAM` names the script unless `program` does.
    The container `image` the model names supplies the handlers it leaves out.

    Raises `ModelLoadError` when it has one (or a non-empty requirements.txt) and
    `allow_code` is off, and when the script breaks the toolkit's contract.
    """
    model_dir = Path(model_dir)
    environment = environment or {}
    path = script_path(model_dir, program or environment.get("SAGEMAKER_PROGRAM"))
    code_dir = model_dir / CODE_DIR
    requirements = code_dir / REQUIREMENTS
    if path is None:
        if requirement_lines(requirements):
            raise ModelLoadError(
                requirements,
                f"lists packages, but there is no {CODE_DIR}/{DEFAULT_PROGRAM} to use them; "
                "flavors run with the server's own libraries: remove it or add the script",
            )
        return None
    if (model_dir / MANIFEST_FILE).exists():
        raise ModelLoadError(
            model_dir / MANIFEST_FILE,
            f"describes a flavor's rows, but {CODE_DIR}/{path.name} reads requests itself: "
            f"remove {MANIFEST_FILE} or the script",
        )
    if not allow_code:
        raise ModelLoadError(
            path,
            "an inference script runs its own code in the server (and code/requirements.txt "
            f"installs packages); set {ALLOW_SETTING}=true if you trust where it came from",
        )
    lib = install_requirements(code_dir, run)
    with _on_path([code_dir, *([lib] if lib is not None else [])]):
        module = _import(path, environment)
        model = ScriptModel(module, path, model_dir, handlers_for(image))
    model.default_accept = environment.get(DEFAULT_ACCEPT_VARIABLE) or DEFAULT_ACCEPT
    return model


class ScriptModel:
    """A model whose script reads each request's body and writes its answer."""

    def __init__(
        self,
        module: ModuleType,
        path: Path,
        model_dir: Path,
        framework: FrameworkHandlers = TOOLKIT,
    ) -> None:
        self.path = path
        self.model_dir = model_dir
        self.default_accept = DEFAULT_ACCEPT
        functions = {name: getattr(module, name, None) for name in HANDLERS}
        for name, function in functions.items():
            if function is not None and not callable(function):
                raise ModelLoadError(path, f"{name} is not a function")
        self._transform = functions["transform_fn"]
        split = [name for name in ("input_fn", "predict_fn", "output_fn") if functions[name]]
        if self._transform is not None and split:
            raise ModelLoadError(
                path,
                f"defines transform_fn and {', '.join(split)}; the SageMaker inference "
                "toolkit refuses transform_fn together with input_fn, predict_fn or "
                "output_fn: keep one or the other",
            )
        model_fn = functions["model_fn"]
        if model_fn is None:
            raise ModelLoadError(path, "defines no model_fn(model_dir) to load the model")
        predict = functions["predict_fn"] or framework.predict_fn
        if self._transform is None and predict is None:
            raise ModelLoadError(
                path,
                f"defines neither predict_fn nor transform_fn, and {framework.name} has no "
                "default predict_fn (the scikit-learn and XGBoost images' containers do: "
                "name one of them as the model's Image)",
            )
        self._input = functions["input_fn"] or framework.input_fn
        self._predict = predict
        self._output = functions["output_fn"] or framework.output_fn
        self._arities = {
            name: _arity(function, name, given, path)
            for name, function, given in (
                ("model_fn", model_fn, 1),
                ("transform_fn", self._transform, 4),
                ("input_fn", self._input, 2),
                ("predict_fn", self._predict, 2),
                ("output_fn", self._output, 2),
            )
            if function is not None
        }
        self._lock = threading.Lock()
        self._context = ScriptContext(str(model_dir), {"model_dir": str(model_dir)})
        try:
            self.model = self._call("model_fn", model_fn, self._context, str(model_dir))
        except Exception as exc:
            raise ModelLoadError(path, f"model_fn failed: {type(exc).__name__}: {exc}") from exc
        own = [name for name in ("input_fn", "predict_fn", "output_fn") if functions[name]]
        self.handlers = (
            "transform_fn"
            if self._transform is not None
            else ", ".join(own) or f"model_fn and the defaults of {framework.name}"
        )

    @property
    def feature_count(self) -> int | None:
        return None  # the script reads the body itself

    @property
    def description(self) -> str:
        return (
            f"SageMaker inference script {CODE_DIR}/{self.path.name} ({self.handlers}), "
            f"model {type(self.model).__name__}"
        )

    def _call(self, name: str, function: Any, context: ScriptContext, *args: Any) -> Any:
        if self._arities[name] == len(args):
            return function(*args)
        return function(*args, context)

    def _transform_default(
        self, body: Any, content_type: str, accept: str, context: ScriptContext
    ) -> Any:
        data = self._call("input_fn", self._input, context, body, content_type)
        prediction = self._call("predict_fn", self._predict, context, data, self.model)
        return self._call("output_fn", self._output, context, prediction, accept)

    def handle(self, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]:
        """The answer to one request and its type, as the toolkit's `Transformer.transform`."""
        if not accept or accept.strip() == "*/*":
            accept = self.default_accept
        data: str | bytes = body
        if content_type in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequest(f"a {content_type} body must be UTF-8: {exc}") from exc
        context = ScriptContext(
            self._context.model_dir, self._context.system_properties, content_type, accept
        )
        with self._lock:
            if self._transform is not None:
                result = self._call(
                    "transform_fn", self._transform, context, self.model, data, content_type, accept
                )
            else:
                result = self._transform_default(data, content_type, accept, context)
        answer, answer_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(answer, str):
            answer = answer.encode("utf-8")
        if not isinstance(answer, bytes | bytearray | memoryview):
            raise TypeError(
                f"{self.path.name} answered {type(answer).__name__}; output_fn or "
                "transform_fn must return bytes or str (or a (body, content_type) tuple)"
            )
        return bytes(answer), str(answer_type)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Rows in, predictions out, for callers in this process: the rows go to the
        script as an `.npy` body and its `.npy` answer comes back."""
        body, _ = self.handle(encode(features, NPY), NPY, NPY)
        return decode(body, NPY)
