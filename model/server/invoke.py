"""The invoke core: one request body in, one answer out, from whichever model it is for.

Every invocation route (`/invocations`, SageMaker's runtime API, the multi-model
API's `/models/{name}/invoke`) calls `invoke`, which reads the body within
SageMaker's 6 MiB limit, applies an injected fault, picks the model (the one the
route chose, else the target model the request names, else the endpoint's own)
and scores it off the event loop: image models through the cross-request batcher
(vision.py), inference scripts with their own functions, flavors with the rows
codecs (model/codecs.py). A target model's container settings pick the serving
defaults of the image it names (model/server/containers.py): the Accept and
Content-Type a request leaves out, the types read, the answer's shape. Whatever
fails ends as a `Problem` with its status; the route decides how that looks
(problems.py).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aiohttp import web

from model.codecs import media_type, read_rows
from model.flavors import BadRequest, Model
from model.flavors.detector import VisionModel
from model.inference_script import RequestHandler
from model.manifest import MAX_PAYLOAD
from model.server import vision
from model.server.batching import Batchers
from model.server.container_settings import NONE, ContainerSettings
from model.server.containers import defaults_for
from model.server.faults import Faults
from model.server.multi_model import ModelCache, TargetMissing, TargetUnloadable
from model.server.problems import InjectedFault, Problem, TargetNotFound
from model.server.settings import ServerSettings

log = logging.getLogger(__name__)

# What botocore sends for invoke_endpoint(TargetModel=...) (multi-model endpoints).
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"


@dataclass
class State:
    settings: ServerSettings
    model: Model | None
    load_error: str | None
    executor: ThreadPoolExecutor
    faults: Faults = field(default_factory=Faults)
    models: ModelCache | None = None  # target models (multi_model.py), when hosted
    batchers: Batchers | None = None  # image requests batched across calls (batching.py)


STATE = web.AppKey("state", State)


def score(
    model: Model,
    body: bytes,
    content_type: str,
    accept: str | None,
    container: ContainerSettings = NONE,
) -> tuple[bytes, str]:
    """The response body and its type: parse, predict, format, all off the event loop."""
    defaults = defaults_for(container.image)
    if isinstance(model, RequestHandler):
        # A SageMaker inference script reads the body and writes the answer itself.
        return model.handle(body, content_type or defaults.script_content_type, accept)
    content_type = content_type or defaults.content_type or ""
    environment = container.environment
    answer = defaults.answer_type(accept, content_type, environment)
    rows = read_rows(body, content_type, model.feature_count, defaults.decoders)
    return defaults.writer(model.predict(rows), answer, environment), answer


async def invoke(
    request: web.Request, chosen: Model | None = None, chosen_container: ContainerSettings = NONE
) -> web.Response:
    """Score the body with `chosen` (in `chosen_container`), else the target model the
    request names, else the endpoint's model."""
    state = request.app[STATE]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(request.content_length) from exc
    if len(body) > MAX_PAYLOAD:
        raise too_large(len(body))
    fault = state.faults.take()
    if fault is not None:
        raise InjectedFault(fault, f"injected fault ({state.faults.count} more to come)")
    container = chosen_container
    if chosen is not None:
        model = chosen
    elif target := request.headers.get(TARGET_MODEL_HEADER):
        model, container = await target_model(state, target)
    elif state.model is None:
        raise Problem(500, f"the model is not loaded: {state.load_error}")
    else:
        model = state.model
    loop = asyncio.get_running_loop()
    content_type = media_type(request.headers.get("Content-Type", ""))
    try:
        if isinstance(model, VisionModel):  # pixels in: batched across calls (vision.py)
            assert state.batchers is not None
            payload, answer = await vision.invoke(
                state.batchers, model, body, content_type, request.headers.get("Accept")
            )
        else:
            payload, answer = await loop.run_in_executor(
                state.executor,
                score,
                model,
                body,
                content_type,
                request.headers.get("Accept"),
                container,
            )
    except BadRequest as exc:
        raise Problem(exc.status, str(exc)) from exc
    except Problem:
        raise
    except Exception as exc:
        log.exception("prediction failed")
        raise Problem(500, f"prediction failed: {type(exc).__name__}: {exc}") from exc
    return web.Response(body=payload, content_type=answer)


async def target_model(state: State, target: str) -> tuple[Model, ContainerSettings]:
    """The model a multi-model request names and its container settings, loaded on
    first use (off the event loop)."""
    if state.models is None:
        raise TargetNotFound(
            400,
            f"target model {target!r}: this endpoint hosts a single model "
            "(BYOM_MODEL_DATA_PREFIX is not set)",
        )
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(state.executor, state.models.served, target)
    except TargetMissing as exc:
        raise TargetNotFound(404, str(exc)) from exc
    except TargetUnloadable as exc:
        raise Problem(400, str(exc)) from exc
    except Exception as exc:
        log.exception("loading target model %s failed", target)
        raise Problem(500, f"target model {target!r}: {type(exc).__name__}: {exc}") from exc


def too_large(size: int | None) -> Problem:
    size_text = f"{size} bytes" if size is not None else "too large"
    return Problem(
        413,
        f"the request body is {size_text}; the limit is {MAX_PAYLOAD} bytes (6 MiB). "
        "Send fewer rows per request",
    )
