"""A local AWS Batch: the subset of the Batch API byom uses, running children as processes.

Speaks Batch's REST-JSON protocol (``POST /v1/submitjob``, ``/v1/describejobs``,
``/v1/listjobs``, ``/v1/canceljob``, ``/v1/terminatejob``), so the scheduler's
unchanged boto3 ``batch`` client reaches it through ``AWS_ENDPOINT_URL_BATCH``.
Each array child runs the job definition's command with Batch's variables
(``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JOB_ARRAY_INDEX``, ``AWS_BATCH_JOB_ATTEMPT``)
and the submission's overrides, and is retried up to ``retryStrategy.attempts``
times and killed after ``timeout.attemptDurationSeconds``, as Batch does.

Children of a definition ``python -m MODULE`` with ``--preload MODULE`` are
forked warm from a process that imported MODULE once (:mod:`infra.local.zygote`).

It runs commands, so it answers only what a Batch client sends (see
:mod:`infra.local.batch_api`), and only the registered definitions' commands.

    python -m infra.local.batch_runner --port 4567 \\
        --preload services.inference_worker.main \\
        --job-definition "byom-worker=python -m services.inference_worker.main"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import shlex
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from aiohttp import web

from infra.local import batch_api
from infra.local.launch import ChildProcess, ExecLauncher, ZygoteLauncher, warm_starts_supported
from shared.batch_contract import OVERRIDE_VARIABLES
from shared.loopback import aiohttp_guard

log = logging.getLogger("byom.local.batch")

_ACCOUNT = "123456789012"
_LIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
# Children mostly wait on S3 and the endpoint. Measured on 2 cores, sixty small
# jobs through Batch with warm children: 36.5 s with 2 at once, 34.5 s with 16
# (the local AWS is the limit there, not the children); 8 leaves room for more cores.
DEFAULT_PARALLEL = 8


@dataclass
class Child:
    index: int | None
    status: str = "PENDING"
    status_reason: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    process: ChildProcess | None = None


@dataclass
class Job:
    job_id: str
    name: str
    queue: str
    definition: str
    command: list[str]
    environment: dict[str, str]
    attempts: int
    timeout: float | None
    array_size: int | None
    created_at: int = field(default_factory=lambda: int(time.time() * 1000))
    children: list[Child] = field(default_factory=list)
    cancelled: bool = False
    terminated: bool = False
    stop_reason: str = ""

    @property
    def status(self) -> str:
        states = {child.status for child in self.children}
        if states <= {"SUCCEEDED"}:
            return "SUCCEEDED"
        if "RUNNING" in states or "PENDING" in states:
            return "RUNNING" if "RUNNING" in states or "SUCCEEDED" in states else "RUNNABLE"
        return "FAILED"

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:local:{_ACCOUNT}:job/{self.job_id}"

    def _times(self) -> dict[str, int]:
        attempts = [a for child in self.children for a in child.attempts]
        times = {"createdAt": self.created_at}
        if attempts:
            times["startedAt"] = min(a["startedAt"] for a in attempts)
            if self.status in ("SUCCEEDED", "FAILED"):
                times["stoppedAt"] = max(a["stoppedAt"] for a in attempts)
        return times

    def status_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        last = self.children[-1].attempts[-1:] if self.array_size is None else []
        return str(last[0]["statusReason"]) if last else ""

    def describe(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "jobId": self.job_id,
            "jobQueue": queue_arn(self.queue),
            "jobDefinition": self.definition,
            "status": self.status,
            "statusReason": self.status_reason(),
            "attempts": [a for child in self.children for a in child.attempts],
            "container": {"command": self.command},
            "isCancelled": self.cancelled,
            "isTerminated": self.terminated,
            **self._times(),
        }
        if self.array_size is not None:
            summary["arrayProperties"] = {"size": self.array_size, "statusSummary": self.counts()}
        return summary

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("PENDING", "RUNNING", "SUCCEEDED", "FAILED"), 0)
        for child in self.children:
            counts[child.status] = counts.get(child.status, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        """The job as ListJobs shows it (Batch's JobSummary shape)."""
        described = self.describe()
        keys = ("jobArn", "jobId", "jobName", "createdAt", "status", "statusReason", "startedAt",
                "stoppedAt", "jobDefinition", "isCancelled", "isTerminated")  # fmt: skip
        summary = {key: described[key] for key in keys if key in described}
        if self.array_size is not None:
            summary["arrayProperties"] = {"size": self.array_size}
        elif self.children[0].attempts:
            container = self.children[0].attempts[-1]["container"]
            summary["container"] = {
                "exitCode": container["exitCode"],
                "reason": container["reason"],
            }
        return summary

    def child_summary(self, child: Child) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "jobArn": f"{self.arn}:{child.index}",
            "jobId": f"{self.job_id}:{child.index}",
            "jobName": self.name,
            "createdAt": self.created_at,
            "status": child.status,
            "statusReason": child.status_reason,
            "arrayProperties": {"index": child.index},
            "jobDefinition": self.definition,
        }
        if child.attempts:
            summary["startedAt"] = child.attempts[0]["startedAt"]
            last = child.attempts[-1]
            summary["container"] = {
                "exitCode": last["container"]["exitCode"],
                "reason": last["container"]["reason"],
            }
        return summary


def queue_arn(queue: str) -> str:
    if queue.startswith("arn:"):
        return queue
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"arn:aws:batch:{region}:{_ACCOUNT}:job-queue/{queue}"


class BatchRunner:
    def __init__(
        self,
        definitions: dict[str, list[str]],
        max_parallel: int,
        *,
        emit_events: bool = True,
        launcher: ExecLauncher | ZygoteLauncher | None = None,
        allowed_environment: frozenset[str] = OVERRIDE_VARIABLES,
    ) -> None:
        self.definitions = definitions
        self.allowed_environment = allowed_environment
        self.jobs: dict[str, Job] = {}
        self.slots = asyncio.Semaphore(max_parallel)
        self.tasks: set[asyncio.Task[None]] = set()
        self.emit_events = emit_events
        self.launcher = launcher or ExecLauncher()

    async def _state_changed(self, job: Job, child: Child | None) -> None:
        """Tell EventBridge, as Batch does: "Batch Job State Change" on the default bus."""
        if not self.emit_events:
            return
        if child is None:
            # A plain (non-array) job's attempts are its one child's.
            attempts = job.children[0].attempts if job.array_size is None else []
            job_id, status = job.job_id, job.status
            reason = job.stop_reason or (attempts[-1]["statusReason"] if attempts else "")
        else:
            suffix = "" if child.index is None else f":{child.index}"
            job_id, status, attempts = f"{job.job_id}{suffix}", child.status, child.attempts
            reason = child.status_reason
        last = attempts[-1] if attempts else {}
        detail: dict[str, Any] = {
            "jobArn": f"arn:aws:batch:local:{_ACCOUNT}:job/{job_id}",
            "jobName": job.name,
            "jobId": job_id,
            "jobQueue": queue_arn(job.queue),
            "status": status,
            "statusReason": reason,
            "attempts": attempts,
            "jobDefinition": job.definition,
            "container": {
                "command": job.command,
                "environment": [{"name": k, "value": v} for k, v in job.environment.items()],
                **last.get("container", {}),
            },
        }
        await asyncio.to_thread(
            boto3.client("events").put_events,
            Entries=[
                {
                    "Source": "aws.batch",
                    "DetailType": "Batch Job State Change",
                    "Detail": json.dumps(detail),
                    "Resources": [detail["jobArn"]],
                }
            ],
        )

    def submit(self, request: dict[str, Any]) -> Job:
        checked = batch_api.check_submission(request, self.definitions, self.allowed_environment)
        job = Job(
            job_id=str(uuid.uuid4()),
            name=checked.name,
            queue=checked.queue,
            definition=checked.definition,
            command=self.definitions[checked.definition],
            environment=checked.environment,
            attempts=checked.attempts,
            timeout=checked.timeout,
            array_size=checked.array_size,
        )
        indices: list[int | None] = list(range(job.array_size)) if job.array_size else [None]
        job.children = [Child(index=i) for i in indices]
        self.jobs[job.job_id] = job
        for child in job.children:
            task = asyncio.create_task(self._run_child(job, child))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        log.info("submitted %s %s (%s children)", job.job_id, job.name, len(job.children))
        return job

    async def _run_child(self, job: Job, child: Child) -> None:
        async with self.slots:
            for attempt in itertools.count(1):
                if job.cancelled or job.terminated:
                    child.status, child.status_reason = "FAILED", job.stop_reason
                    break
                child.status = "RUNNING"
                code, reason = await self._attempt(job, child, attempt)
                if code == 0 or attempt >= job.attempts:
                    child.status = "SUCCEEDED" if code == 0 else "FAILED"
                    child.status_reason = reason
                    break
                log.info("job %s child %s exited %s; retrying", job.job_id, child.index, code)
        await self._finished(job, child)

    async def _finished(self, job: Job, child: Child) -> None:
        if child.index is not None:
            await self._state_changed(job, child)
        if job.status in ("SUCCEEDED", "FAILED"):
            await self._state_changed(job, None)

    def _environment(self, job: Job, child: Child, attempt: int) -> dict[str, str]:
        env = dict(os.environ) | job.environment
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = job.queue
        env["AWS_BATCH_CE_NAME"] = "byom-local"
        if child.index is None:
            env["AWS_BATCH_JOB_ID"] = job.job_id
        else:
            env["AWS_BATCH_JOB_ID"] = f"{job.job_id}:{child.index}"
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(child.index)
        return env

    async def _attempt(self, job: Job, child: Child, attempt: int) -> tuple[int, str]:
        started = int(time.time() * 1000)
        process = await self.launcher.start(job.command, self._environment(job, child, attempt))
        child.process = process
        if job.terminated:  # terminated while this attempt was starting
            process.terminate()
        try:
            code = await asyncio.wait_for(process.wait(), timeout=job.timeout)
            reason = f"Essential container in task exited with code {code}"
        except TimeoutError:
            process.kill()
            await process.wait()
            code, reason = -9, "Job attempt duration exceeded timeout"
        child.process = None
        if job.terminated:
            reason = job.stop_reason
        child.attempts.append(
            {
                "container": {"exitCode": code, "reason": reason},
                "startedAt": started,
                "stoppedAt": int(time.time() * 1000),
                "statusReason": reason,
            }
        )
        return code, reason

    def cancel(self, job_id: str, reason: str, *, terminate: bool) -> None:
        """CancelJob stops children that have not started; TerminateJob also running ones."""
        job = self.jobs.get(job_id.split(":")[0])
        if job is None or job.status in ("SUCCEEDED", "FAILED"):
            return
        job.stop_reason = job.stop_reason or reason
        if not terminate:
            job.cancelled = True
            return
        job.terminated = True
        for child in job.children:
            if child.process is not None:
                child.process.terminate()

    def describe(self, job_id: str) -> dict[str, Any] | None:
        """DescribeJobs of a job, or of an array child (``<array id>:<index>``)."""
        parent, _, index = job_id.partition(":")
        job = self.jobs.get(parent)
        if job is None or not index:
            return job.describe() if job is not None else None
        child = next((c for c in job.children if str(c.index) == index), None)
        if child is None:
            return None
        described = job.child_summary(child)
        described |= {"jobQueue": queue_arn(job.queue), "attempts": child.attempts}
        described["container"] = {"command": job.command, **described.get("container", {})}
        return described

    def list_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        query = batch_api.check_list(request)
        if query.array_job_id is not None:
            job = self.jobs.get(query.array_job_id)
            if job is None or job.array_size is None:
                return {"jobSummaryList": []}
            found = [job.child_summary(child) for child in job.children]
        else:
            queue = queue_arn(query.queue or "")
            jobs = [job for job in self.jobs.values() if queue_arn(job.queue) == queue]
            jobs.sort(key=lambda job: job.created_at, reverse=True)
            found = [job.summary() for job in jobs if query.matches(job.name, job.definition)]
        if query.status is not None:
            found = [summary for summary in found if summary["status"] == query.status]
        page = found[query.offset : query.offset + query.max_results]
        response: dict[str, Any] = {"jobSummaryList": page}
        if query.offset + query.max_results < len(found):
            response["nextToken"] = str(query.offset + query.max_results)
        return response


def make_app(runner: BatchRunner, port: int) -> web.Application:
    """The Batch API on ``port``: loopback clients of that port only, then Batch clients."""

    async def submit_job(request: web.Request) -> web.Response:
        job = runner.submit(await batch_api.body(request))
        return web.json_response({"jobArn": job.arn, "jobName": job.name, "jobId": job.job_id})

    async def describe_jobs(request: web.Request) -> web.Response:
        ids = (await batch_api.body(request)).get("jobs", [])
        found = [d for d in (runner.describe(i) for i in ids if isinstance(i, str)) if d]
        return web.json_response({"jobs": found})

    async def list_jobs(request: web.Request) -> web.Response:
        return web.json_response(runner.list_jobs(await batch_api.body(request)))

    async def stop_job(request: web.Request, *, terminate: bool) -> web.Response:
        body = await batch_api.body(request)
        job_id, reason = body.get("jobId"), body.get("reason")
        if not isinstance(job_id, str) or not isinstance(reason, str):
            raise batch_api.client_error("jobId and reason are required")
        runner.cancel(job_id, reason, terminate=terminate)
        return web.json_response({})

    async def cancel_job(request: web.Request) -> web.Response:
        return await stop_job(request, terminate=False)

    async def terminate_job(request: web.Request) -> web.Response:
        return await stop_job(request, terminate=True)

    guard = aiohttp_guard(port)

    @web.middleware
    async def loopback_only(request: web.Request, handler: batch_api.Handler) -> web.StreamResponse:
        return await guard(request, handler)

    app = web.Application(middlewares=[loopback_only, batch_api.only_batch_clients])
    app.router.add_post("/v1/submitjob", submit_job)
    app.router.add_post("/v1/describejobs", describe_jobs)
    app.router.add_post("/v1/listjobs", list_jobs)
    app.router.add_post("/v1/canceljob", cancel_job)
    app.router.add_post("/v1/terminatejob", terminate_job)
    return app


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--job-definition", action="append", default=[], help="NAME=COMMAND (repeatable)"
    )
    parser.add_argument(
        "--max-parallel", type=int, default=DEFAULT_PARALLEL, help="children running at once"
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        help="MODULE whose `python -m MODULE` children start warm (repeatable)",
    )
    parser.add_argument(
        "--allow-environment",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment override accepted besides the scheduler's own (repeatable; tests)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s batch %(message)s")
    definitions = {}
    for item in args.job_definition:
        name, _, command = item.partition("=")
        definitions[name] = shlex.split(command)

    async def serve() -> None:
        launcher: ExecLauncher | ZygoteLauncher = ExecLauncher()
        if args.preload and warm_starts_supported():
            launcher = ZygoteLauncher(args.preload, ExecLauncher())
            await launcher.open()
        allowed = OVERRIDE_VARIABLES | frozenset(args.allow_environment)
        runner = BatchRunner(
            definitions, args.max_parallel, launcher=launcher, allowed_environment=allowed
        )
        app_runner = web.AppRunner(make_app(runner, args.port), access_log=None)
        await app_runner.setup()
        await web.TCPSite(app_runner, args.host, args.port).start()
        log.info("local Batch listening on %s:%s", args.host, args.port)
        try:
            await asyncio.Event().wait()
        finally:
            if isinstance(launcher, ZygoteLauncher):
                await launcher.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
