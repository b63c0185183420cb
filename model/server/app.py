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
- With `BYOM_INFERENCE_COMPONENT`, the runtime API plays a scale-to-zero endpoint
  hosting that inference component: requests must name it, and while it has no
  copies they get SageMaker's "no capacity" ValidationError; loopback servers add
  `GET|POST /_byom/inference-component` to read and set its copies
  (`model/server/capacity.py`).
- `GET /execution-parameters`: what Batch Transform asks a container before it starts.
- `POST /_byom/faults`, tests only: `{"status": 429, "count": 2}` makes the next two
  invocations fail with that status. Registered only when the server listens on a
  loopback address (or `BYOM_FAULT_API=true`) (`model/server/faults.py`).

Bound to a loopback address (the local stack), the server answers only this
machine's clients: a request whose Host is not its own loopback address and port,
or a cross-origin browser request, is refused with 403 (shared/loopback.py;
`BYOM_LOOPBACK_ONLY` overrides).

Bodies are `application/x-npy` (a 2-D numeric array, as byom's workers send: the
rows were parsed once, in the worker), `text/csv` (one row of numbers per line, no
header, "\\n" or "\\r\\n" endings) or `application/json` (`{"instances": [[...],
...]}` or a bare list of rows). The answer has the type the Accept header asks
for, else the request's: CSV with one score per input line, `.npy`, or
`{"predictions": [...]}` (`model/codecs.py`).

This module holds the routes and the app factory; the invoke core is
`invoke.py`, error responses `problems.py`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from model.flavors import Model, ModelLoadError
from model.manifest import MAX_PAYLOAD
from model.package import PackageLimits, load_package
from model.server import capacity, faults, mme_api, tracing
from model.server.batching import Batchers
from model.server.capacity import CAPACITY, INFERENCE_COMPONENT_HEADER, Capacity
from model.server.faults import Faults
from model.server.invoke import STATE, State, invoke
from model.server.multi_model import ModelCache
from model.server.problems import InjectedFault, Problem, container_error, runtime_error
from model.server.settings import ServerSettings, cpu_count
from shared.loopback import Handler, aiohttp_guard

log = logging.getLogger(__name__)

# SageMaker's request limit for real-time endpoints.
# aiohttp stops reading past its own limit; this one sits above SageMaker's so
# that a slightly oversized request is read whole and answered with a clear 413.
CLIENT_MAX_SIZE = MAX_PAYLOAD + 1024 * 1024
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


# --- routes ------------------------------------------------------------------------


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


async def invocations(request: web.Request) -> web.Response:
    """The container contract: errors are `{"error": ...}` with the container's status."""
    try:
        return await invoke(request)
    except Problem as problem:
        if not isinstance(problem, InjectedFault):
            log.warning("invocation failed: %s %s", problem.status, problem.message)
        return container_error(problem)


async def endpoint_invocations(request: web.Request) -> web.Response:
    """The runtime API: container errors wrapped the way SageMaker wraps them."""
    request_id = str(uuid.uuid4())
    try:
        if (capacity := request.app.get(CAPACITY)) is not None:
            # A scale-to-zero endpoint's refusals come before the body is read.
            capacity.check_named(request.headers.get(INFERENCE_COMPONENT_HEADER))
            capacity.admit()
        response = await invoke(request)
    except Problem as problem:
        if not isinstance(problem, InjectedFault):
            log.warning("invocation failed: %s %s", problem.status, problem.message)
        return runtime_error(problem, request_id)
    response.headers["x-amzn-RequestId"] = request_id
    response.headers["x-Amzn-Invoked-Production-Variant"] = "AllTraffic"
    return response


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
        faults=Faults(
            settings.fault_status if settings.fault_count else None, settings.fault_count
        ),
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
        mme_api.add_routes(app.router)
    if settings.fault_api_enabled:
        faults.add_routes(app, state.faults)
    if (component := Capacity.from_settings(settings)) is not None:
        app[CAPACITY] = component
        if settings.fault_api_enabled:
            capacity.add_routes(app)

    async def shutdown(app: web.Application) -> None:
        app[STATE].executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app
