"""Calls to the model endpoint: bounded, adaptive concurrency and retries with jitter.

botocore's own retries are off for these calls so that one policy decides: throttling
halves the concurrency limit (it grows back by one per success, AIMD style), and
throttling, 5xx and transport errors (refused, reset, closed connections, bodies
cut off mid-read) are retried with full-jitter exponential
backoff, a bounded number of times. A model error (the model rejected the input)
is never retried.

An endpoint with no capacity (a scale-to-zero endpoint at zero copies, waking) is
a wait, not an error: the call tries again with backoff, without spending its
attempts, until ``wait_seconds`` have passed, and then fails naming that bound
(:class:`EndpointNoCapacity`, which no retry of the child would cure). Each wait
shows in the trace as one span, from the first refusal to the first answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_RESEND_COUNT as RESEND_COUNT,
)

from shared import chunk_timer, endpoint_capacity, tracing
from shared.errors import EndpointUnavailable, ModelError

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker_runtime import SageMakerRuntimeClient

log = logging.getLogger(__name__)

_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException"}


class AdaptiveLimiter:
    """A concurrency limit that shrinks on throttling and creeps back on success."""

    def __init__(self, limit: int) -> None:
        self.ceiling = limit
        self.limit = float(limit)
        self._in_flight = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < int(self.limit))
            self._in_flight += 1

    async def __aexit__(self, *exc: object) -> None:
        async with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def throttled(self) -> None:
        self.limit = max(1.0, self.limit / 2)

    def succeeded(self) -> None:
        self.limit = min(float(self.ceiling), self.limit + 1 / max(1.0, self.limit))


class Endpoint:
    def __init__(
        self,
        client: SageMakerRuntimeClient,
        name: str,
        *,
        concurrency: int,
        attempts: int,
        backoff: float,
        backoff_max: float,
        target_model: str | None = None,
        timeout: float | None = None,
        inference_component: str = "",
        wait_seconds: float = 900.0,
        wait_poll_max: float = 30.0,
    ) -> None:
        self.client = client
        self.name = name
        # The model a multi-model endpoint is asked for (None: a single-model endpoint).
        self.target_model = target_model
        self.limiter = AdaptiveLimiter(concurrency)
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retries = 0
        # Seconds one attempt may take (ModelClientConfig's InvocationsTimeoutInSeconds);
        # an attempt past it counts as a transport error and is retried.
        self.timeout = timeout
        # A scale-to-zero endpoint's component, named on every call ("": none).
        self.inference_component = inference_component
        self.wait_seconds = wait_seconds
        self.wait_poll_max = wait_poll_max
        # When the endpoint first answered "no capacity" in the wait now going on
        # (wall clock, for the span); None while it answers.
        self.waiting_since: float | None = None
        tracing.trace_endpoint_calls(client)  # the server continues the caller's trace

    async def invoke(
        self, payload: bytes, *, content_type: str | None, accept: str | None
    ) -> bytes:
        """The answer to one request; a header given as None is not sent."""
        last_error = "no attempt made"
        headers = {"TargetModel": self.target_model} if self.target_model else {}
        if self.inference_component:
            headers["InferenceComponentName"] = self.inference_component
        if content_type is not None:
            headers["ContentType"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        attempt = 1
        waits = 0  # refusals for want of capacity, which spend no attempt
        wait_started: float | None = None  # this call's first refusal (monotonic)
        while True:
            try:
                async with self.limiter:
                    started = time.monotonic()
                    with tracing.aws_call(
                        "SageMaker Runtime", "InvokeEndpoint", **{RESEND_COUNT: attempt - 1}
                    ):
                        async with asyncio.timeout(self.timeout):
                            response = await self.client.invoke_endpoint(
                                EndpointName=self.name, Body=payload, **headers
                            )
                            body = await response["Body"].read()
                    chunk_timer.endpoint_call(time.monotonic() - started)
                self.limiter.succeeded()
                if wait_started is not None:
                    self._capacity_came(time.monotonic() - wait_started)
                return body
            except ClientError as exc:
                if endpoint_capacity.is_no_capacity(exc):
                    wait_started = wait_started or time.monotonic()
                    waits += 1
                    await self._wait_for_capacity(wait_started, waits)
                    continue
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                message = exc.response.get("Error", {}).get("Message", str(exc))
                if code == "ModelError":
                    # SageMaker reports any container error as a 424 ModelError;
                    # the container's own status says whether a retry can help.
                    original: Any = exc.response.get("OriginalStatusCode")
                    status = int(original) if original else status
                if code in _THROTTLED or status == 429:
                    self.limiter.throttled()
                elif status < 500:
                    raise ModelError(f"the endpoint rejected the request: {message}") from exc
                last_error = f"HTTP {status} {code}: {message}"
            except TimeoutError as exc:
                last_error = (
                    f"no answer within {self.timeout:g} s"
                    if self.timeout is not None
                    else f"{type(exc).__name__}: {exc}"
                )
            except (ConnectionError, HTTPClientError, ReadTimeoutError) as exc:
                # HTTPClientError covers a dropped keep-alive (ConnectionClosedError)
                # and a body cut off mid-read (ResponseStreamingError).
                last_error = f"{type(exc).__name__}: {exc}"
            if attempt >= self.attempts:
                break
            self.retries += 1
            chunk_timer.endpoint_retry()
            delay = random.uniform(0, min(self.backoff_max, self.backoff * 2**attempt))
            log.info(
                "retrying endpoint call",
                extra={"attempt": attempt, "delay": round(delay, 3), "error": last_error},
            )
            attempt += 1
            await asyncio.sleep(delay)
        raise EndpointUnavailable(
            f"endpoint {self.name} failed {self.attempts} times; last error: {last_error}"
        )

    async def _wait_for_capacity(self, wait_started: float, waits: int) -> None:
        """Back off before asking again, or fail once the wait is past its bound."""
        if self.waiting_since is None:
            self.waiting_since = time.time()
            log.info(
                "endpoint has no capacity; waiting for it",
                extra={"endpoint": self.name, "bound_seconds": self.wait_seconds},
            )
        waited = time.monotonic() - wait_started
        left = self.wait_seconds - waited
        if left <= 0:
            raise endpoint_capacity.waited_too_long(
                self.name, self.inference_component, waited, self.wait_seconds
            )
        # Full jitter keeps the children of a burst from asking in step.
        ceiling = min(self.wait_poll_max, self.backoff * 2**waits)
        await asyncio.sleep(min(left, random.uniform(ceiling / 2, ceiling)))

    def _capacity_came(self, waited: float) -> None:
        """This call waited ``waited`` seconds and got its answer: the chunk's timing
        shows the wait, and the first answer after a wait closes its span."""
        chunk_timer.endpoint_waited(waited)
        if self.waiting_since is not None:
            ended = time.time()
            tracing.past_span(
                tracing.ENDPOINT_WAIT_SPAN,
                self.waiting_since,
                ended,
                **{tracing.ENDPOINT_WAITED: round(ended - self.waiting_since, 3)},
            )
            log.info(
                "endpoint answered after waiting for capacity",
                extra={"endpoint": self.name, "waited_seconds": round(waited, 3)},
            )
            self.waiting_since = None
