"""The SageMaker inference-container contract, and the runtime API in front of it.

Routes:

- `GET /ping`: 200 once the model is loaded; otherwise 500 with the reason, so a
  health check fails saying which file is wrong and why.
- `POST /invocations`: what SageMaker forwards to a container. Errors are
  `{"error": "..."}` with the status that fits (400, 406, 413, 415, 500).
- `POST /endpoints/{name}/invocations`: SageMaker's runtime API (`InvokeEndpoint`),
  so the real `sagemaker-runtime` clients can talk to this server directly. Errors
  look as SageMaker sends them: the container's errors become 424 `ModelError`
  with the original status and message, which botocore raises as
  `ModelError`. SigV4 headers are accepted and ignored.
- Either invocation route with `X-Amzn-SageMaker-Target-Model` (botocore's
  `TargetModel`) is served by that model from `BYOM_MODEL_DATA_PREFIX`, loaded on
  first use, as a multi-model endpoint does (`model/server/multi_model.py`); a
  missing one answers 404 `ValidationError`.
- `POST /models`, `GET /models`, `GET|DELETE /models/{name}`,
  `POST /models/{name}/invoke`: SageMaker's multi-model container API, when the
  server hosts several models (`model/server/mme_api.py`).
- `GET /execution-parameters`: what Batch Transform asks a container before it starts.
- `POST /_byom/faults`, tests only: `{"status": 429, "count": 2}` makes the next two
  invocations fail with that status. Registered only when the server listens on a
  loopback address (or `BYOM_FAULT_API=true`).

Bodies are `application/x-npy` (a 2-D numeric array, as byom's workers send: the
rows were parsed once, in the worker), `text/csv` (one row of numbers per line, no
header, "\\n" or "\\r\\n" endings) or `application/json` (`{"instances": [[...],
...]}` or a bare list of rows). The answer has the type the Accept header asks
for, else the request's: CSV with one score per input line, `.npy`, or
`{"predictions": [...]}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from aiohttp import web

from model.errors import ByomModelError
from model.flavors import BadRequest, Model, ModelLoadError
from model.flavors.detector import VisionModel
from model.inference_script import RequestHandler
from model.manifest import MAX_PAYLOAD
from model.package import PackageLimits, load_package
from model.server import tracing, vision
from model.server.batching import Batchers
from model.server.multi_model import ModelCache, TargetMissing, TargetUnloadable
from model.server.settings import ServerSettings, cpu_count
from shared.loopback import Handler, aiohttp_guard

log = logging.getLogger(__name__)

# The largest finite float32: models see float32, so larger values are refused.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# What botocore sends for invoke_endpoint(TargetModel=...) (multi-model endpoints).
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
# SageMaker's request limit for real-time endpoints.
# aiohttp stops reading past its own limit; this one sits above SageMaker's so
# that a slightly oversized request is read whole and answered with a clear 413.
CLIENT_MAX_SIZE = MAX_PAYLOAD + 1024 * 1024

CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"

_CORAL = "http://internal.amazon.com/coral/"
# The `x-amzn-ErrorType` SageMaker sends for each status; botocore turns the part
# before the colon into the error code it raises.
ERROR_TYPES = {
    400: f"ValidationError:{_CORAL}com.amazon.coral.validate/",
    413: f"ValidationError:{_CORAL}com.amazon.coral.validate/",
    424: f"ModelError:{_CORAL}com.amazon.coral.service/",
    429: f"ThrottlingException:{_CORAL}com.amazon.coral.availability/",
    500: f"InternalFailure:{_CORAL}com.amazon.coral.service/",
    503: f"ServiceUnavailable:{_CORAL}com.amazon.coral.service/",
}


class Problem(ByomModelError):
    """A request that ends in an error response, with the status the container sends."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class InjectedFault(Problem):
    """A failure asked for through the fault settings; passed through as it is."""


class TargetNotFound(Problem):
    """The requested target model is not there: SageMaker's own ValidationError, not
    the model's error."""


@dataclass
class State:
    settings: ServerSettings
    model: Model | None
    load_error: str | None
    executor: ThreadPoolExecutor
    fault_status: int | None = None
    fault_count: int = 0
    models: ModelCache | None = None  # target models (multi_model.py), when hosted
    batchers: Batchers | None = None  # image requests batched across calls (batching.py)

    def take_fault(self) -> int | None:
        if self.fault_status is None or self.fault_count <= 0:
            return None
        self.fault_count -= 1
        return self.fault_status


STATE = web.AppKey("state", State)
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


# --- decoding and encoding -------------------------------------------------------


def parse_csv(body: bytes, feature_count: int | None) -> np.ndarray:
    """Rows of float32 features, one per line; `BadRequest` names the first bad line."""
    if not body.strip():
        raise BadRequest("the request body is empty; send one row of features per line")
    data = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    lines = len(newlines) + (0 if body.endswith(b"\n") else 1)
    # Commas per line, counted without splitting: the line of each comma is the
    # number of newlines before it.
    commas = np.bincount(
        np.searchsorted(newlines, np.flatnonzero(data == ord(","))), minlength=lines
    )[:lines]
    columns = feature_count if feature_count is not None else int(commas[0]) + 1
    if np.all(commas == columns - 1):
        with contextlib.suppress(ValueError, pd.errors.ParserError):
            frame = pd.read_csv(
                io.BytesIO(body), header=None, dtype=np.float64, engine="c", na_filter=False
            )
            wide = frame.to_numpy()
            # Checked before narrowing: 1e39 is a float64 but would be float32's inf.
            if wide.shape == (lines, columns) and (np.abs(wide) <= FLOAT32_MAX).all():
                return wide.astype(np.float32)
    raise BadRequest(_csv_problem(body, columns))


def _csv_problem(body: bytes, columns: int) -> str:
    """Where the body first fails to be rows of `columns` numbers (the slow path)."""
    text = body.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    for number, line in enumerate(text.split("\n"), start=1):
        cells = line.rstrip("\r").split(",")
        if not line.strip():
            return f"line {number} is empty; every line must be a row of features"
        if len(cells) != columns:
            return f"line {number}: expected {columns} columns, found {len(cells)}"
        for column, cell in enumerate(cells, start=1):
            value = cell.strip().strip('"')
            try:
                number_value = float(value)
            except ValueError:
                shown = value if len(value) <= 40 else value[:37] + "..."
                return f"line {number}, column {column}: {shown!r} is not a number"
            if not math.isfinite(number_value):
                return f"line {number}, column {column}: {value!r} is not a finite number"
            if abs(number_value) > FLOAT32_MAX:
                return f"line {number}, column {column}: {value!r} is beyond the float32 range"
    return "the body is not CSV rows of numbers"


def parse_json(body: bytes, feature_count: int | None) -> np.ndarray:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list):
        raise BadRequest('expected {"instances": [[...], ...]} or a list of rows')
    if not instances:
        raise BadRequest("no instances to score")
    try:
        rows = np.asarray(instances, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"instances must be rows of numbers of equal length: {exc}") from exc
    if rows.ndim != 2:
        raise BadRequest("instances must be a list of rows, each a list of numbers")
    if feature_count is not None and rows.shape[1] != feature_count:
        raise BadRequest(f"expected {feature_count} features per row, got {rows.shape[1]}")
    if not np.isfinite(rows).all():
        row = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
        raise BadRequest(f"instance {row} holds a value that is not a finite number")
    return rows


def parse_npy(body: bytes, feature_count: int | None) -> np.ndarray:
    """A 2-D numeric ``.npy`` array (SageMaker's ``application/x-npy``); never unpickles."""
    try:
        rows: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadRequest(f"the body is not a .npy array of numbers: {exc}") from exc
    if not isinstance(rows, np.ndarray) or rows.dtype.kind not in "fiub":
        raise BadRequest("the .npy body must hold a numeric array")
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or not rows.size:
        raise BadRequest(f"expected rows of features, got an array of shape {rows.shape}")
    if feature_count is not None and rows.shape[1] != feature_count:
        raise BadRequest(f"expected {feature_count} features per row, got {rows.shape[1]}")
    features = np.asarray(rows, dtype=np.float32)
    if not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise BadRequest(f"row {row} holds a value that is not a finite float32")
    return features


def format_csv(predictions: np.ndarray) -> bytes:
    """One line per row, each value in its shortest round-trip text.

    pyarrow's CSV writer formats in C++, with no Python object per row: about
    10x faster than numpy's ``astype(str)`` for a million probabilities.
    """
    columns = predictions.reshape(len(predictions), -1)
    table = pa.table({f"c{i}": columns[:, i] for i in range(columns.shape[1])})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return buffer.getvalue()


def format_npy(predictions: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, predictions, allow_pickle=False)
    return buffer.getvalue()


def format_json(predictions: np.ndarray) -> bytes:
    return json.dumps({"predictions": predictions.tolist()}).encode()


ENCODERS = {CSV: format_csv, JSON: format_json, NPY: format_npy}


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _response_type(accept: str | None, content_type: str) -> str:
    if not accept:
        return content_type
    for part in accept.split(","):
        wanted = _media_type(part)
        if wanted in (CSV, JSON, NPY):
            return wanted
        if wanted in ("*/*", "text/*", "application/*", ""):
            return content_type
    raise Problem(406, f"cannot answer with {accept!r}; accept {CSV}, {JSON} or {NPY}")


def score(model: Model, body: bytes, content_type: str, accept: str | None) -> tuple[bytes, str]:
    """The response body and its type: parse, predict, format, all off the event loop."""
    if isinstance(model, RequestHandler):
        # A SageMaker inference script reads the body and writes the answer itself.
        return model.handle(body, content_type, accept)
    answer = _response_type(accept, content_type)
    if content_type == CSV:
        rows = parse_csv(body, model.feature_count)
    elif content_type == NPY:
        rows = parse_npy(body, model.feature_count)
    elif content_type == JSON:
        rows = parse_json(body, model.feature_count)
    else:
        raise Problem(415, f"cannot read {content_type!r}; send {CSV}, {NPY} or {JSON}")
    predictions = model.predict(rows)
    return ENCODERS[answer](predictions), answer


# --- handlers ----------------------------------------------------------------------


async def ping(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.model is None and not state.settings.multi_model:
        return web.json_response({"error": state.load_error}, status=500)
    return web.Response(status=200)


async def execution_parameters(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response(
        {
            "MaxConcurrentTransforms": state.settings.threads,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": MAX_PAYLOAD // (1024 * 1024),
        }
    )


async def _invoke(request: web.Request, chosen: Model | None = None) -> web.Response:
    """Score the body with `chosen`, else the target model the request names, else
    the endpoint's model."""
    state = request.app[STATE]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise _too_large(request.content_length) from exc
    if len(body) > MAX_PAYLOAD:
        raise _too_large(len(body))
    fault = state.take_fault()
    if fault is not None:
        raise InjectedFault(fault, f"injected fault ({state.fault_count} more to come)")
    if chosen is not None:
        model = chosen
    elif target := request.headers.get(TARGET_MODEL_HEADER):
        model = await _target_model(state, target)
    elif state.model is None:
        raise Problem(500, f"the model is not loaded: {state.load_error}")
    else:
        model = state.model
    loop = asyncio.get_running_loop()
    content_type = _media_type(request.headers.get("Content-Type", ""))
    try:
        if isinstance(model, VisionModel):  # pixels in: batched across calls (vision.py)
            assert state.batchers is not None
            payload, answer = await vision.invoke(
                state.batchers, model, body, content_type, request.headers.get("Accept")
            )
        else:
            payload, answer = await loop.run_in_executor(
                state.executor, score, model, body, content_type, request.headers.get("Accept")
            )
    except BadRequest as exc:
        raise Problem(exc.status, str(exc)) from exc
    except Problem:
        raise
    except Exception as exc:
        log.exception("prediction failed")
        raise Problem(500, f"prediction failed: {type(exc).__name__}: {exc}") from exc
    return web.Response(body=payload, content_type=answer)


async def _target_model(state: State, target: str) -> Model:
    """The model a multi-model request names, loaded on first use (off the event loop)."""
    if state.models is None:
        raise TargetNotFound(
            400,
            f"target model {target!r}: this endpoint hosts a single model "
            "(BYOM_MODEL_DATA_PREFIX is not set)",
        )
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(state.executor, state.models.get, target)
    except TargetMissing as exc:
        raise TargetNotFound(404, str(exc)) from exc
    except TargetUnloadable as exc:
        raise Problem(400, str(exc)) from exc
    except Exception as exc:
        log.exception("loading target model %s failed", target)
        raise Problem(500, f"target model {target!r}: {type(exc).__name__}: {exc}") from exc


def _too_large(size: int | None) -> Problem:
    size_text = f"{size} bytes" if size is not None else "too large"
    return Problem(
        413,
        f"the request body is {size_text}; the limit is {MAX_PAYLOAD} bytes (6 MiB). "
        "Send fewer rows per request",
    )


async def invocations(request: web.Request) -> web.Response:
    """The container contract: errors are `{"error": ...}` with the container's status."""
    try:
        return await _invoke(request)
    except Problem as problem:
        if not isinstance(problem, InjectedFault):
            log.warning("invocation failed: %s %s", problem.status, problem.message)
        return web.json_response({"error": problem.message}, status=problem.status)


async def endpoint_invocations(request: web.Request) -> web.Response:
    """The runtime API: container errors wrapped the way SageMaker wraps them."""
    request_id = str(uuid.uuid4())
    try:
        response = await _invoke(request)
    except Problem as problem:
        if not isinstance(problem, InjectedFault):
            log.warning("invocation failed: %s %s", problem.status, problem.message)
        return _runtime_error(problem, request_id)
    response.headers["x-amzn-RequestId"] = request_id
    response.headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
    return response


def _runtime_error(problem: Problem, request_id: str) -> web.Response:
    status = problem.status
    body: dict[str, Any]
    if isinstance(problem, InjectedFault | TargetNotFound) or status == 413:
        # Faults stand for SageMaker itself failing, and the size limit is checked
        # before the container sees the request: neither is the model's error.
        kind = ERROR_TYPES.get(status, ERROR_TYPES[500 if status >= 500 else 400])
        body = {"message": problem.message}
    else:
        side = "client" if status < 500 else "server"
        body = {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "OriginalStatusCode": status,
            "OriginalMessage": problem.message,
            "Message": (
                f'Received {side} error ({status}) from primary with message "{problem.message}".'
            ),
        }
        kind, status = ERROR_TYPES[424], 424
    return web.json_response(
        body,
        status=status,
        headers={"x-amzn-ErrorType": kind, "x-amzn-RequestId": request_id},
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body of a control request (faults, model loading).

    Only `application/json` is read: a browser sends that type cross-site only after
    a CORS preflight this server never grants, so a page's `text/plain` form or
    `fetch` cannot reach these routes, whatever else guards them.
    """
    if request.content_type != JSON:
        raise Problem(
            415, f"send the document as {JSON}, not {request.content_type or 'no type'!r}"
        )
    try:
        return await request.json()
    except ValueError as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from exc


async def set_faults(request: web.Request) -> web.Response:
    """Tests only: make the next `count` invocations answer `status`."""
    state = request.app[STATE]
    if request.method == "POST":
        try:
            document = await read_json(request)
        except Problem as problem:
            return web.json_response(
                {"error": f'expected {{"status": 429, "count": 2}}: {problem.message}'},
                status=problem.status,
            )
        try:
            status, count = int(document["status"]), int(document["count"])
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(
                {"error": f'expected {{"status": 429, "count": 2}}: {exc}'}, status=400
            )
        if count < 0 or (count and not 400 <= status <= 599):
            return web.json_response(
                {"error": "status must be within 400-599 and count at least 0"}, status=400
            )
        state.fault_status, state.fault_count = (status, count) if count else (None, 0)
        log.info("faults set: the next %d invocations answer %s", count, status)
    return web.json_response({"status": state.fault_status, "count": state.fault_count})


# --- the application ---------------------------------------------------------------


def package_limits(settings: ServerSettings) -> PackageLimits:
    """The archive limits the settings give, for the default model and every target."""
    return PackageLimits(
        max_members=settings.package_max_members,
        max_bytes=settings.package_max_bytes,
        max_ratio=settings.package_max_ratio,
    )


def load(settings: ServerSettings, threads_per_call: int) -> tuple[Model | None, str | None]:
    """The model, or the reason it could not be loaded (the server still starts)."""
    limits = package_limits(settings)
    try:
        # A directory or a model.tar.gz, held to its byom.toml when it has one.
        model = load_package(
            settings.model_dir,
            workdir=settings.package_workdir,
            allow_pickle=settings.allow_pickle,
            threads=threads_per_call,
            limits=limits,
            allow_code=settings.allow_model_code,
            program=settings.sagemaker_program,
        )
    except ModelLoadError as exc:
        return None, str(exc)
    return model, None


def _model_cache(settings: ServerSettings, threads_per_call: int) -> ModelCache | None:
    if not settings.model_data_prefix and not settings.multi_model:
        return None
    return ModelCache(
        settings.model_data_prefix or None,
        settings.model_cache_dir,
        settings.max_models,
        allow_pickle=settings.allow_pickle,
        allow_code=settings.allow_model_code,
        threads=threads_per_call,
        limits=package_limits(settings),
    )


def loopback_guard(port: int) -> Middleware:
    """shared/loopback.py's rule for a server on `port`; for port 0 (any free port)
    the port the request arrived on, known only once the server listens."""
    if port:
        return aiohttp_guard(port)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        bound = int(sockname[1]) if sockname else -1
        return await aiohttp_guard(bound)(request, handler)

    return guard


def build_app(settings: ServerSettings) -> web.Application:
    # With as many calls in flight as CPUs, one OpenMP thread per call uses every
    # core without oversubscribing; fewer calls get proportionally more threads.
    threads_per_call = max(1, cpu_count() // settings.threads)
    model, error = load(settings, threads_per_call)
    state = State(
        settings=settings,
        model=model,
        load_error=error,
        executor=ThreadPoolExecutor(settings.threads, thread_name_prefix="predict"),
        fault_status=settings.fault_status if settings.fault_count else None,
        fault_count=settings.fault_count,
        models=_model_cache(settings, threads_per_call),
    )
    state.batchers = Batchers(state.executor, settings.image_batch_wait_ms / 1000)
    # The loopback rule runs first, so a refused request reaches nothing else.
    guard: list[Any] = [loopback_guard(settings.port)] if settings.loopback_only_enabled else []
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE, middlewares=[*guard, *tracing.middlewares(settings)]
    )
    app[STATE] = state
    app.router.add_get("/ping", ping)
    app.router.add_get("/execution-parameters", execution_parameters)
    app.router.add_post("/invocations", invocations)
    app.router.add_post("/endpoints/{name}/invocations", endpoint_invocations)
    if state.models is not None:
        from model.server import mme_api  # it imports this module

        mme_api.add_routes(app.router)
    if settings.fault_api_enabled:
        app.router.add_get("/_byom/faults", set_faults)
        app.router.add_post("/_byom/faults", set_faults)

    async def shutdown(app: web.Application) -> None:
        app[STATE].executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app
