"""SageMaker's multi-model container API, for an endpoint in `Mode: MultiModel`.

There SageMaker downloads and extracts each target model itself (the endpoint runs
with network isolation) and tells the container what to do with it:

- `POST /models` `{"model_name": "...", "url": "/opt/ml/models/<name>/model"}`:
  load the package in that directory (`model/package.py`, as any package) into the
  server's bounded LRU (`model/server/multi_model.py`, `BYOM_MAX_MODELS`; past it
  the least recently used model is unloaded). 200 once loaded; 409 if the name is
  loaded already; 400 with the reason for a package that is refused; 507 when
  there is no memory for it, so that SageMaker unloads models and retries.
- `GET /models`: `{"models": [{"modelName": ..., "modelUrl": ...}, ...]}`, a page at
  a time: `nextPageToken` when there are more, passed back as `?next_page_token=`.
- `GET /models/{name}`: `{"modelName": ..., "modelUrl": ...}`; 404 if not loaded.
- `DELETE /models/{name}`: unload it; 404 if not loaded.
- `POST /models/{name}/invoke`: score with that model, with the body, Content-Type
  and Accept handling of `/invocations`; 404 if it is not loaded (SageMaker then
  loads it and asks again).

Errors are `{"error": "..."}`, as `/invocations` answers them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from model.server.invoke import STATE, invoke
from model.server.multi_model import AlreadyLoaded, ModelCache, TargetUnloadable
from model.server.problems import InjectedFault, Problem, read_json

log = logging.getLogger(__name__)

PAGE_SIZE = 100


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/models", load_model)
    router.add_get("/models", list_models)
    router.add_get("/models/{name}", get_model)
    router.add_delete("/models/{name}", unload_model)
    router.add_post("/models/{name}/invoke", invoke_model)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _models(request: web.Request) -> ModelCache:
    models = request.app[STATE].models
    assert models is not None  # the routes are added only when there is a cache
    return models


def _describe(name: str, url: str) -> dict[str, str]:
    return {"modelName": name, "modelUrl": url}


async def load_model(request: web.Request) -> web.Response:
    try:
        document: Any = await read_json(request)
    except Problem as problem:
        expected = '{"model_name": "...", "url": "/opt/ml/models/..."}'
        return _error(problem.status, f"expected {expected}: {problem.message}")
    name = document.get("model_name") if isinstance(document, dict) else None
    url = document.get("url") if isinstance(document, dict) else None
    if not isinstance(name, str) or not name or "/" in name:
        return _error(400, "model_name must be a non-empty string without '/'")
    if not isinstance(url, str) or not url:
        return _error(400, "url must be the local path of the model's files")
    path = Path(url)  # a missing one is refused by the package loader, with the reason
    state = request.app[STATE]
    loop = asyncio.get_running_loop()
    try:
        model = await loop.run_in_executor(state.executor, _models(request).add, name, path)
    except AlreadyLoaded:
        return _error(409, f"model {name!r} is already loaded")
    except TargetUnloadable as exc:
        log.warning("load of %s refused: %s", name, exc)
        return _error(400, str(exc))
    except MemoryError:
        return _error(507, f"model {name!r}: not enough memory to load it")
    except Exception as exc:
        log.exception("loading model %s failed", name)
        return _error(500, f"model {name!r}: {type(exc).__name__}: {exc}")
    log.info("loaded model %s (%s)", name, model.description)
    return web.json_response(_describe(name, url))


async def list_models(request: web.Request) -> web.Response:
    listing = _models(request).listing()
    token = request.query.get("next_page_token") or "0"
    if not token.isdigit():
        return _error(400, f"next_page_token {token!r} is not one this server gave")
    start = int(token)
    page = listing[start : start + PAGE_SIZE]
    body: dict[str, Any] = {"models": [_describe(name, url) for name, url in page]}
    if start + PAGE_SIZE < len(listing):
        body["nextPageToken"] = str(start + PAGE_SIZE)
    return web.json_response(body)


async def get_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = _models(request).peek(name)
    if found is None:
        return _error(404, f"model {name!r} is not loaded")
    return web.json_response(_describe(name, found[1]))


async def unload_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not _models(request).remove(name):
        return _error(404, f"model {name!r} is not loaded")
    return web.json_response({"modelName": name, "status": "unloaded"})


async def invoke_model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = _models(request).peek_served(name)
    if found is None:
        return _error(404, f"model {name!r} is not loaded")
    try:
        # The settings its package holds: on AWS the only way they reach the model.
        return await invoke(request, found[0], found[2])
    except Problem as problem:
        if not isinstance(problem, InjectedFault):
            log.warning("invocation of %s failed: %s %s", name, problem.status, problem.message)
        return _error(problem.status, problem.message)
