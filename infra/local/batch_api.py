"""What the local Batch runner accepts: Batch clients' requests, Batch's own rules.

The runner starts processes, and it listens on 127.0.0.1, where any web page the
user has open can send it requests. aiohttp's ``json()`` ignores the content
type, so without these checks a page's "simple" cross-site POST (``text/plain``,
no custom headers, no CORS preflight) could submit a job. A Batch client always
sends ``Content-Type: application/json`` and a SigV4 ``Authorization`` header,
neither of which a page may send cross-site without a preflight, which this
server never grants; :func:`shared.loopback.aiohttp_guard` (which the runner puts
in front of these checks) refuses a ``Host`` other than its own loopback address
and port (DNS rebinding) and any foreign ``Origin``. On top of that only the
registered definitions' commands run, with only the environment variables the
scheduler sets (:data:`services.scheduler.batch_jobs.OVERRIDE_VARIABLES`): any
other override could redirect a child (``AWS_ENDPOINT_URL``, ``BYOM_*``) or run
code in it (``LD_PRELOAD``, ``PYTHONWARNINGS`` with ``BROWSER``). Batch's own
limits on submissions apply too, answered with the ``ClientException`` body
Batch sends, so boto3 raises what it raises on AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.scheduler.batch_jobs import OVERRIDE_VARIABLES

# botocore's SigV4 header; the signature itself is not checked (any credentials
# work locally, as docs/index.md says), its presence and shape are.
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/\s]+/\d{8}/[a-z0-9-]+/batch/aws4_request, "
    r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}"
)
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_FILTERS = {"JOB_NAME", "JOB_DEFINITION"}
_STATUSES = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"}


def _error(status: int, kind: str, message: str) -> web.HTTPException:
    error = web.HTTPException(
        text=json.dumps({"__type": kind, "message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": kind},
    )
    error.set_status(status)
    return error


def client_error(message: str) -> web.HTTPException:
    """Batch's 400 ``ClientException``, which boto3 raises as ``ClientException``."""
    return _error(400, "ClientException", message)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def only_batch_clients(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SigV4-signed JSON request, as botocore sends; the loopback guard runs first."""
    if not _SIGV4.fullmatch(request.headers.get("Authorization", "")):
        raise _error(
            403, "MissingAuthenticationTokenException", "a SigV4-signed Batch request is required"
        )
    if request.content_type != "application/json":
        raise client_error(f"Content-Type {request.content_type!r}; application/json required")
    return await handler(request)


async def body(request: web.Request) -> dict[str, Any]:
    try:
        parsed = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise client_error(f"the body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise client_error("the body must be a JSON object")
    return parsed


@dataclass(frozen=True)
class Submission:
    name: str
    queue: str
    definition: str
    environment: dict[str, str]
    attempts: int
    timeout: float | None
    array_size: int | None


def check_submission(
    request: dict[str, Any],
    definitions: dict[str, list[str]],
    allowed_environment: frozenset[str] = OVERRIDE_VARIABLES,
) -> Submission:
    """SubmitJob's arguments, held to Batch's rules, the registered commands and the
    environment variables in ``allowed_environment`` (the scheduler's, by default)."""
    name, queue = request.get("jobName"), request.get("jobQueue")
    reference = request.get("jobDefinition")
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise client_error(
            "jobName must be 1-128 letters, numbers, hyphens and underscores, "
            "starting with a letter or number"
        )
    if not isinstance(queue, str) or not queue:
        raise client_error("jobQueue is required")
    if not isinstance(reference, str):
        raise client_error("jobDefinition is required")
    definition = reference.split("/")[-1].split(":")[0]
    if definition not in definitions:
        raise client_error(f"Job definition {reference} does not exist")
    overrides = request.get("containerOverrides") or {}
    command = overrides.get("command")
    if command is not None and command != definitions[definition]:
        # Batch would run it; this runner is reachable by anything on the machine,
        # so it runs only what it was started with.
        raise client_error(
            "containerOverrides.command is not accepted by the local Batch runner: "
            f"job definition {definition} runs {definitions[definition]}"
        )
    environment: dict[str, str] = {}
    for variable in overrides.get("environment") or []:
        key, value = variable.get("name"), variable.get("value", "")
        if not isinstance(key, str) or not isinstance(value, str):
            raise client_error("environment variables need a string name and value")
        if key.startswith("AWS_BATCH"):
            raise client_error(
                f"environment variable {key}: names starting with AWS_BATCH are reserved"
            )
        if key not in allowed_environment:
            # Batch would pass it; here the child runs on the user's machine with
            # the user's rights, so only what the scheduler sends gets through.
            raise client_error(
                f"environment variable {key} is not accepted by the local Batch runner; "
                f"it accepts {', '.join(sorted(allowed_environment))}"
            )
        environment[key] = value
    size = (request.get("arrayProperties") or {}).get("size")
    if size is not None and not (isinstance(size, int) and 2 <= size <= 10_000):
        raise client_error("arrayProperties.size must be between 2 and 10000")
    attempts = (request.get("retryStrategy") or {}).get("attempts", 1)
    if not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise client_error("retryStrategy.attempts must be between 1 and 10")
    timeout = (request.get("timeout") or {}).get("attemptDurationSeconds")
    if timeout is not None and not (isinstance(timeout, int) and timeout >= 60):
        raise client_error("timeout.attemptDurationSeconds must be at least 60")
    return Submission(
        name=name,
        queue=queue,
        definition=definition,
        environment=environment,
        attempts=attempts,
        timeout=timeout,
        array_size=size,
    )


@dataclass(frozen=True)
class ListQuery:
    queue: str | None
    array_job_id: str | None
    status: str | None
    filters: dict[str, list[str]]
    offset: int
    max_results: int

    def matches(self, name: str, definition: str) -> bool:
        for key, values in self.filters.items():
            subject = name.lower() if key == "JOB_NAME" else definition
            if not any(_pattern_matches(v.lower() if key == "JOB_NAME" else v, subject)
                       for v in values):  # fmt: skip
                return False
        return True


def _pattern_matches(pattern: str, subject: str) -> bool:
    """Batch's filter values: exact, or a prefix when they end with ``*``."""
    if pattern.endswith("*"):
        return subject.startswith(pattern[:-1])
    return subject == pattern.split("/")[-1].split(":")[0] if "/" in pattern else subject == pattern


def check_list(request: dict[str, Any]) -> ListQuery:
    """ListJobs' arguments, with Batch's defaults: RUNNING only unless filtered."""
    queue, array_job_id = request.get("jobQueue"), request.get("arrayJobId")
    if (queue is None) == (array_job_id is None):
        raise client_error("exactly one of jobQueue and arrayJobId is required")
    if request.get("multiNodeJobId") is not None:
        raise client_error("multi-node jobs are not supported by the local Batch runner")
    filters: dict[str, list[str]] = {}
    for item in request.get("filters") or []:
        key, values = item.get("name"), item.get("values")
        if key not in _FILTERS or not isinstance(values, list):
            raise client_error(f"unsupported filter {key!r}; supported: {sorted(_FILTERS)}")
        filters[key] = [str(v) for v in values]
    if len(filters) > 1:
        raise client_error("only one filter can be used at a time")
    status = request.get("jobStatus")
    if status is not None and status not in _STATUSES:
        raise client_error(f"jobStatus {status!r} is not a job status")
    # With a filter, jobStatus is ignored and every status is listed.
    if filters:
        status = None
    elif status is None and array_job_id is None:
        status = "RUNNING"
    token = request.get("nextToken")
    max_results = request.get("maxResults") or 100
    if not isinstance(max_results, int) or not 1 <= max_results <= 1000:
        raise client_error("maxResults must be between 1 and 1000")
    try:
        offset = int(token) if token else 0
    except ValueError as exc:
        raise client_error("nextToken is not one this server gave") from exc
    return ListQuery(
        queue=queue,
        array_job_id=array_job_id,
        status=status,
        filters=filters,
        offset=offset,
        max_results=max_results,
    )
