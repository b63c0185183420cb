"""The job dashboard: byom's jobs, their progress, timelines, chunks and errors, read-only.

Served by the local stack on 127.0.0.1. Jobs come from the jobs table (their
progress is the job item's chunk count: nothing is scraped from logs), spans
from the trace receiver (``infra/local/otlp_receiver.py``), objects from the
bucket, streamed through here so the browser needs no credentials. Only GET
routes exist, and only a job's own input, output and errors objects can be read.

    python -m infra.local.dashboard --port 8050 --traces http://127.0.0.1:4318
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from botocore.exceptions import ClientError

from infra.local import dashboard_views as views
from infra.local.serving import serve_until_stopped
from shared import aws, naming, tracing
from shared.jobs import JobStore
from shared.loopback import Handler, aiohttp_guard
from shared.schemas import JobItem, JobState

log = logging.getLogger("byom.local.dashboard")

MAX_JOBS = 200
ERRORS_PREVIEW_BYTES = 64 * 1024
STREAM_BYTES = 1024 * 1024
TRACES = web.AppKey("traces", str)
HTTP = web.AppKey("http", aiohttp.ClientSession)
# The job list is a scan of the whole jobs table. However many tabs are open (and
# /api/jobs callers), it is scanned at most once per JOBS_MAX_AGE_SECONDS: every
# request within that interval gets the same list, and requests arriving during a
# scan wait for it. So at most 0.5 scans a second, and none while no page is open;
# the jobs page polls at the same pace (JOBS_REFRESH_MS), as faster would show
# nothing new. A job's own page reads only its item (get_item), at its own pace.
JOBS_MAX_AGE_SECONDS = 2.0
JOBS_REFRESH_MS = int(JOBS_MAX_AGE_SECONDS * 1000)


def now() -> float:
    """The clock the job list's age is measured on."""
    return time.monotonic()


def recent_jobs(limit: int = MAX_JOBS) -> list[JobItem]:
    """The newest jobs first."""
    return JobStore().recent(limit)


class JobList:
    """The newest jobs, loaded at most once per ``max_age`` seconds, shared by all callers."""

    def __init__(
        self, load: Callable[[], list[JobItem]], max_age: float, clock: Callable[[], float]
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._clock = clock
        self._jobs: list[JobItem] = []
        self._loaded_at = -math.inf
        self._lock = asyncio.Lock()  # one scan at a time; waiters take its result

    async def get(self) -> list[JobItem]:
        async with self._lock:
            if self._clock() - self._loaded_at >= self._max_age:
                self._jobs = await asyncio.to_thread(self._load)
                # Aged from the scan's end: even a scan slower than max_age leaves a
                # full interval before the next one.
                self._loaded_at = self._clock()
            return self._jobs


JOBS = web.AppKey("jobs", JobList)


def find_job(job_id: str) -> JobItem | None:
    return JobStore().get(job_id)  # None for a name claim too


def errors_preview(job: JobItem) -> str | None:
    if job.errors_key is None:
        return None
    try:
        response = aws.s3().get_object(
            Bucket=job.bucket, Key=job.errors_key, Range=f"bytes=0-{ERRORS_PREVIEW_BYTES - 1}"
        )
    except ClientError:
        return None
    text: str = response["Body"].read().decode("utf-8", errors="replace")
    return text


async def spans_of(request: web.Request, job: JobItem) -> list[dict[str, Any]]:
    query = {"trace_id": job.trace_id} if job.trace_id else {"job_id": job.job_id}
    try:
        async with request.app[HTTP].get(
            f"{request.app[TRACES]}/v1/spans",
            params=query,
            timeout=aiohttp.ClientTimeout(total=3),
        ) as response:
            if response.status != 200:
                return []
            spans: list[dict[str, Any]] = (await response.json())["spans"]
            return spans
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
        return []  # the timeline says "no spans yet"; the rest of the page still works


def _links(job: JobItem) -> views.Links:
    base = f"/jobs/{quote(job.job_id, safe='')}/objects"
    return views.Links(
        input=f"{base}/input",
        # No output link before SUCCEEDED: an output is never shown as finished early.
        output=f"{base}/output" if job.state is JobState.SUCCEEDED else None,
        errors=f"{base}/errors" if job.errors_key else None,
    )


def _settled(job: JobItem, spans: list[dict[str, Any]]) -> bool:
    """Nothing more will change: the job ended and its done event's span is in."""
    if not job.state.terminal:
        return False
    return job.trace_id is None or any(s["attributes"].get(tracing.DONE_EVENT) for s in spans)


def _html(text: str, nonce: str | None = None) -> web.Response:
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    sources = f"'nonce-{nonce}'" if nonce else "'none'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src {sources}; style-src {sources}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return response


async def jobs_page(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    body = views.jobs_fragment(await request.app[JOBS].get())
    page = views.page(
        "byom jobs", body, fragment_url="/fragments/jobs", nonce=nonce, refresh_ms=JOBS_REFRESH_MS
    )
    return _html(page, nonce)


async def jobs_fragment(request: web.Request) -> web.Response:
    return _html(views.jobs_fragment(await request.app[JOBS].get()))


async def _job_body(request: web.Request) -> tuple[str, int]:
    job_id = request.match_info["job_id"]
    job = await asyncio.to_thread(find_job, job_id)
    if job is None:
        return views.not_found(job_id), 404
    spans, errors_text = await asyncio.gather(
        spans_of(request, job), asyncio.to_thread(errors_preview, job)
    )
    body = views.job_fragment(job, spans, _links(job), errors_text, settled=_settled(job, spans))
    return body, 200


async def job_page(request: web.Request) -> web.Response:
    nonce = secrets.token_urlsafe(16)
    body, status = await _job_body(request)
    fragment = f"/fragments/jobs/{quote(request.match_info['job_id'], safe='')}"
    response = _html(views.page("byom job", body, fragment_url=fragment, nonce=nonce), nonce)
    response.set_status(status)
    return response


async def job_fragment(request: web.Request) -> web.Response:
    body, status = await _job_body(request)
    response = _html(body)
    response.set_status(status)
    return response


async def job_object(request: web.Request) -> web.StreamResponse:
    """Stream one of the job's own objects; any other key is out of reach."""
    job = await asyncio.to_thread(find_job, request.match_info["job_id"])
    which = request.match_info["which"]
    if job is None:
        raise web.HTTPNotFound(text="no such job")
    link = getattr(_links(job), which, None)
    key = {"input": job.input_key, "output": job.output_key, "errors": job.errors_key}.get(which)
    if link is None or key is None:
        raise web.HTTPNotFound(text=f"this job has no {which} object")
    try:
        obj = await asyncio.to_thread(aws.s3().get_object, Bucket=job.bucket, Key=key)
    except ClientError as exc:
        raise web.HTTPNotFound(text=f"s3://{job.bucket}/{key}: not found") from exc
    response = web.StreamResponse()
    if which == "input":  # the user's bytes, whatever they are: a download, never a page
        response.content_type = "application/octet-stream"
        filename = quote(naming.safe_name(key), safe="")
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    else:
        response.content_type = "text/plain"
        response.charset = "utf-8"
    # Untrusted bytes: never sniffed into a page, never running anything if opened as one.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.content_length = obj["ContentLength"]
    await response.prepare(request)
    body = obj["Body"]
    try:
        while chunk := await asyncio.to_thread(body.read, STREAM_BYTES):
            await response.write(chunk)
    finally:
        body.close()
    await response.write_eof()
    return response


async def jobs_json(request: web.Request) -> web.Response:
    jobs = await request.app[JOBS].get()
    return web.json_response([job.model_dump(mode="json") for job in jobs])


async def ping(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def make_app(traces_url: str, port: int) -> web.Application:
    # A page elsewhere must not read the dashboard, directly or through a name it
    # controls (DNS rebinding): only this machine's own requests are answered.
    app = web.Application(middlewares=[aiohttp_guard(port), security_headers])
    app[TRACES] = traces_url.rstrip("/")
    app[JOBS] = JobList(recent_jobs, JOBS_MAX_AGE_SECONDS, now)

    async def http_session(app: web.Application) -> Any:
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    app.cleanup_ctx.append(http_session)
    app.router.add_get("/", jobs_page)
    app.router.add_get("/fragments/jobs", jobs_fragment)
    app.router.add_get("/jobs/{job_id}", job_page)
    app.router.add_get("/fragments/jobs/{job_id}", job_fragment)
    app.router.add_get("/jobs/{job_id}/objects/{which:input|output|errors}", job_object)
    app.router.add_get("/api/jobs", jobs_json)
    app.router.add_get("/ping", ping)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--traces", required=True, help="the trace receiver's base URL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    asyncio.run(
        serve_until_stopped(
            make_app(args.traces, args.port),
            "127.0.0.1",
            args.port,
            f"job dashboard on http://127.0.0.1:{args.port}/",
            log,
        )
    )


if __name__ == "__main__":
    main()
