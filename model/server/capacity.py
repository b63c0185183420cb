"""An endpoint's inference component with copies that come and go: the local stand-in
for SageMaker's scale-to-zero endpoints.

On AWS, an endpoint hosting an inference component whose copy count is 0 answers
every `InvokeEndpoint` with SageMaker's "no capacity" error until someone raises
the count (`UpdateInferenceComponentRuntimeConfig`) and a copy has started, which
takes minutes. When `BYOM_INFERENCE_COMPONENT` is set, the model server plays that
endpoint for the local stack:

- the runtime path (`POST /endpoints/{name}/invocations`) requires the request to
  name the component (botocore's `InferenceComponentName`, sent as the header
  `X-Amzn-SageMaker-Inference-Component`) and, while no copy runs, answers the
  error SageMaker answers, before reading the body or calling the model;
- `BYOM_START_COLD` starts it with no copies; `BYOM_COLD_SECONDS` ends such a cold
  start by itself (as if a scaling policy had woken it); `BYOM_WAKE_SECONDS` is
  how long a copy takes to start after a wake ("inf": never);
  `BYOM_SCALE_IN_SECONDS` goes back to 0 copies after that long without an
  invocation, as the endpoint's scale-in policy does;
- `GET|POST /_byom/inference-component` (loopback only, like the fault route)
  reads the copy counts and sets the desired count; the stack's SageMaker API
  answers `DescribeInferenceComponent` and `UpdateInferenceComponentRuntimeConfig`
  through it (infra/local/inference_components.py). Its answer counts wakes
  (updates that raised the desired count from 0), so a test can assert that a
  burst woke the endpoint once.

The state moves only when read: every question first applies what time has done
(a copy started, a cold start ended, an idle endpoint scaled in), so no timer runs.
The container path (`/invocations`, `/ping`) never consults it: that is what runs
inside a copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from model.server.problems import ServiceError, control_document, control_refusal
from model.server.settings import ServerSettings

log = logging.getLogger(__name__)

# What botocore sends for invoke_endpoint(InferenceComponentName=...).
INFERENCE_COMPONENT_HEADER = "X-Amzn-SageMaker-Inference-Component"
# SageMaker's words for an invocation of a component with no copies (HTTP 400,
# ValidationError); callers recognise it by "no capacity".
NO_CAPACITY_MESSAGE = (
    "Inference Component has no capacity to process this request. "
    "ApplicationAutoScaling may be in-progress (if configured) or try to increase the "
    "capacity by invoking UpdateInferenceComponentRuntimeConfig API."
)
CONTROL_PATH = "/_byom/inference-component"
EXPECTED = '{"copies": 1}'


class NoCapacity(ServiceError):
    """The component has no copy to serve the request."""

    def __init__(self) -> None:
        super().__init__(400, NO_CAPACITY_MESSAGE)


class WrongComponent(ServiceError):
    """The request names no inference component, or another than the endpoint hosts."""


@dataclass
class Capacity:
    """One inference component's copies: desired, and current once started."""

    name: str
    wake_seconds: float = 0.0
    cold_seconds: float | None = None
    scale_in_seconds: float | None = None
    start_cold: bool = False
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    desired: int = field(init=False)
    wakes: int = field(init=False, default=0)  # updates that raised desired from 0
    scale_ins: int = field(init=False, default=0)  # idle scale-ins to 0
    created: float = field(init=False)  # epoch seconds, for Describe
    modified: float = field(init=False)
    # When the desired copies run (monotonic; inf: never); None while desired is 0.
    _ready_at: float | None = field(init=False, default=None)
    _cold_until: float | None = field(init=False, default=None)
    _last_used: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        now = self.clock()
        self.created = self.modified = self.wall_clock()
        self._last_used = now
        if self.start_cold:
            self.desired = 0
            if self.cold_seconds is not None:
                self._cold_until = now + self.cold_seconds
        else:
            self.desired, self._ready_at = 1, now

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Capacity | None:
        if not settings.inference_component:
            return None
        return cls(
            name=settings.inference_component,
            wake_seconds=settings.wake_seconds,
            cold_seconds=settings.cold_seconds,
            scale_in_seconds=settings.scale_in_seconds,
            start_cold=settings.start_cold,
        )

    def _advance(self, now: float) -> None:
        """Apply what time has done since the last question."""
        if self._cold_until is not None and now >= self._cold_until:
            # The cold start is over: a copy runs from that moment, whoever asked.
            ended, self._cold_until = self._cold_until, None
            self.desired = max(self.desired, 1)
            self._ready_at = min(self._ready_at, ended) if self._ready_at is not None else ended
            self.modified = self.wall_clock()
        if (
            self.scale_in_seconds is not None
            and self.desired > 0
            and self._ready_at is not None
            and now >= max(self._ready_at, self._last_used) + self.scale_in_seconds
        ):
            log.info("inference component %s idle: scaling in to 0 copies", self.name)
            self.desired, self._ready_at = 0, None
            self.scale_ins += 1
            self.modified = self.wall_clock()

    def _current(self, now: float) -> int:
        if self._ready_at is None or now < self._ready_at:
            return 0
        return self.desired

    def current(self) -> int:
        with self._lock:
            now = self.clock()
            self._advance(now)
            return self._current(now)

    def admit(self) -> None:
        """Let one invocation through, or raise `NoCapacity` while no copy runs."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            if self._current(now) == 0:
                raise NoCapacity()
            self._last_used = now

    def set_desired(self, copies: int) -> None:
        """What UpdateInferenceComponentRuntimeConfig does: the copies wanted."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            if copies > 0 and self.desired == 0:
                self.wakes += 1
                # The first wake ends a cold start; from then on the count is the API's.
                self._cold_until = None
                self._ready_at = now + self.wake_seconds  # inf: never
                self._last_used = now
                log.info(
                    "inference component %s woken (wake %d): %s copies in %s s",
                    self.name,
                    self.wakes,
                    copies,
                    self.wake_seconds,
                )
            elif copies == 0:
                self._ready_at = None
            self.desired = copies
            self.modified = self.wall_clock()

    def document(self) -> dict[str, Any]:
        """The control route's answer: counts, wakes and times (epoch seconds)."""
        with self._lock:
            now = self.clock()
            self._advance(now)
            return {
                "name": self.name,
                "desired_copies": self.desired,
                "current_copies": self._current(now),
                "wakes": self.wakes,
                "scale_ins": self.scale_ins,
                "created": self.created,
                "modified": self.modified,
            }

    def check_named(self, named: str | None) -> None:
        """Refuse a runtime request that does not name this component."""
        if named == self.name:
            return
        if not named:
            # SageMaker's words, and the name this endpoint hosts.
            raise WrongComponent(
                400,
                "Inference Component Name header is required for endpoints to which you "
                "plan to deploy inference components. Please include Inference Component "
                "Name header or consider using SageMaker models. "
                f"This endpoint hosts {self.name!r}.",
            )
        raise WrongComponent(
            400, f"Inference component {named!r} is not hosted by this endpoint ({self.name!r})."
        )


CAPACITY = web.AppKey("capacity", Capacity)


async def control(request: web.Request) -> web.Response:
    """`GET`: the component's counts; `POST {"copies": n}`: set the desired count."""
    capacity = request.app[CAPACITY]
    if request.method == "POST":
        document = await control_document(request, EXPECTED)
        if isinstance(document, web.Response):
            return document
        copies = document.get("copies") if isinstance(document, dict) else None
        if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
            return control_refusal(EXPECTED, "copies is a whole number, 0 or more")
        capacity.set_desired(copies)
    return web.json_response(capacity.document())


def add_routes(app: web.Application) -> None:
    """The control route, for the component the app already holds (``CAPACITY``)."""
    app.router.add_get(CONTROL_PATH, control)
    app.router.add_post(CONTROL_PATH, control)
