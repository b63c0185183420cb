"""A local AWS Batch: the subset of the Batch API byom uses, running children as processes.

Speaks Batch's REST-JSON protocol (``POST /v1/submitjob``, ``/v1/describejobs``,
``/v1/canceljob``, ``/v1/terminatejob``), so the scheduler's unchanged boto3 ``batch``
client reaches it through ``AWS_ENDPOINT_URL_BATCH``. Each array child runs the
job definition's command with ``AWS_BATCH_JOB_ARRAY_INDEX`` set, and is retried up
to ``retryStrategy.attempts`` times and killed after ``timeout.attemptDurationSeconds``,
as Batch does.

    python -m infra.local.batch_runner --port 4567 \\
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

log = logging.getLogger("byom.local.batch")

_ACCOUNT = "123456789012"


@dataclass
class Child:
    index: int | None
    status: str = "PENDING"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None


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

    @property
    def status(self) -> str:
        states = {child.status for child in self.children}
        if states <= {"SUCCEEDED"}:
            return "SUCCEEDED"
        if "RUNNING" in states or "PENDING" in states:
            return "RUNNING" if "RUNNING" in states or "SUCCEEDED" in states else "RUNNABLE"
        return "FAILED"

    def describe(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "jobArn": f"arn:aws:batch:local:{_ACCOUNT}:job/{self.job_id}",
            "jobName": self.name,
            "jobId": self.job_id,
            "jobQueue": self.queue,
            "jobDefinition": self.definition,
            "status": self.status,
            "createdAt": self.created_at,
            "attempts": [a for child in self.children for a in child.attempts],
            "container": {"command": self.command},
        }
        if self.array_size is not None:
            counts = {state: 0 for state in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED")}
            for child in self.children:
                counts[child.status] = counts.get(child.status, 0) + 1
            summary["arrayProperties"] = {"size": self.array_size, "statusSummary": counts}
        return summary


def queue_arn(queue: str) -> str:
    if queue.startswith("arn:"):
        return queue
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return f"arn:aws:batch:{region}:{_ACCOUNT}:job-queue/{queue}"


class BatchRunner:
    def __init__(
        self, definitions: dict[str, list[str]], max_parallel: int, *, emit_events: bool = True
    ) -> None:
        self.definitions = definitions
        self.jobs: dict[str, Job] = {}
        self.slots = asyncio.Semaphore(max_parallel)
        self.tasks: set[asyncio.Task[None]] = set()
        self.emit_events = emit_events

    async def _state_changed(self, job: Job, child: Child | None) -> None:
        """Tell EventBridge, as Batch does: "Batch Job State Change" on the default bus."""
        if not self.emit_events:
            return
        if child is None:
            # A plain (non-array) job's attempts are its one child's.
            attempts = job.children[0].attempts if job.array_size is None else []
            job_id, status = job.job_id, job.status
        else:
            suffix = "" if child.index is None else f":{child.index}"
            job_id, status, attempts = f"{job.job_id}{suffix}", child.status, child.attempts
        last = attempts[-1] if attempts else {}
        detail = {
            "jobArn": f"arn:aws:batch:local:{_ACCOUNT}:job/{job_id}",
            "jobName": job.name,
            "jobId": job_id,
            "jobQueue": queue_arn(job.queue),
            "status": status,
            "statusReason": last.get("statusReason", ""),
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
        definition = request["jobDefinition"].split("/")[-1].split(":")[0]
        if definition not in self.definitions:
            raise web.HTTPBadRequest(
                text=f'{{"message": "job definition {definition} is not registered"}}',
                content_type="application/json",
            )
        overrides = request.get("containerOverrides", {})
        environment = {e["name"]: e["value"] for e in overrides.get("environment", [])}
        array_size = request.get("arrayProperties", {}).get("size")
        job = Job(
            job_id=str(uuid.uuid4()),
            name=request["jobName"],
            queue=request["jobQueue"],
            definition=definition,
            command=overrides.get("command") or self.definitions[definition],
            environment=environment,
            attempts=int(request.get("retryStrategy", {}).get("attempts", 1)),
            timeout=request.get("timeout", {}).get("attemptDurationSeconds"),
            array_size=array_size,
        )
        indices: list[int | None] = list(range(array_size)) if array_size else [None]
        job.children = [Child(index=i) for i in indices]
        self.jobs[job.job_id] = job
        for child in job.children:
            task = asyncio.create_task(self._run_child(job, child))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        log.info("submitted %s (%s children)", job.job_id, len(job.children))
        return job

    async def _run_child(self, job: Job, child: Child) -> None:
        async with self.slots:
            for attempt in itertools.count(1):
                if job.cancelled:
                    child.status = "FAILED"
                    return
                child.status = "RUNNING"
                code = await self._attempt(job, child, attempt)
                if code == 0 or attempt >= job.attempts:
                    child.status = "SUCCEEDED" if code == 0 else "FAILED"
                    await self._finished(job, child)
                    return
                log.info("job %s child %s exited %s; retrying", job.job_id, child.index, code)

    async def _finished(self, job: Job, child: Child) -> None:
        if child.index is not None:
            await self._state_changed(job, child)
        if job.status in ("SUCCEEDED", "FAILED"):
            await self._state_changed(job, None)

    async def _attempt(self, job: Job, child: Child, attempt: int) -> int:
        env = dict(os.environ) | job.environment
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = job.queue
        env["AWS_BATCH_CE_NAME"] = "byom-local"
        if child.index is None:
            env["AWS_BATCH_JOB_ID"] = job.job_id
        else:
            env["AWS_BATCH_JOB_ID"] = f"{job.job_id}:{child.index}"
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(child.index)
        started = int(time.time() * 1000)
        process = await asyncio.create_subprocess_exec(*job.command, env=env)
        child.process = process
        try:
            code = await asyncio.wait_for(process.wait(), timeout=job.timeout)
            reason = f"Essential container in task exited with code {code}"
        except TimeoutError:
            process.kill()
            await process.wait()
            code, reason = -9, "Job attempt duration exceeded timeout"
        child.process = None
        child.attempts.append(
            {
                "container": {"exitCode": code, "reason": reason},
                "startedAt": started,
                "stoppedAt": int(time.time() * 1000),
                "statusReason": reason,
            }
        )
        return code

    def cancel(self, job_id: str, *, terminate: bool) -> None:
        job = self.jobs.get(job_id.split(":")[0])
        if job is None:
            return
        job.cancelled = True
        if terminate:
            for child in job.children:
                if child.process is not None:
                    child.process.terminate()


def make_app(runner: BatchRunner) -> web.Application:
    async def submit_job(request: web.Request) -> web.Response:
        job = runner.submit(await request.json())
        return web.json_response(
            {"jobArn": job.describe()["jobArn"], "jobName": job.name, "jobId": job.job_id}
        )

    async def describe_jobs(request: web.Request) -> web.Response:
        ids = (await request.json()).get("jobs", [])
        found = [runner.jobs[i].describe() for i in ids if i in runner.jobs]
        return web.json_response({"jobs": found})

    async def cancel_job(request: web.Request) -> web.Response:
        runner.cancel((await request.json())["jobId"], terminate=False)
        return web.json_response({})

    async def terminate_job(request: web.Request) -> web.Response:
        runner.cancel((await request.json())["jobId"], terminate=True)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/v1/submitjob", submit_job)
    app.router.add_post("/v1/describejobs", describe_jobs)
    app.router.add_post("/v1/canceljob", cancel_job)
    app.router.add_post("/v1/terminatejob", terminate_job)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--job-definition", action="append", default=[], help="NAME=COMMAND (repeatable)"
    )
    parser.add_argument("--max-parallel", type=int, default=2, help="children running at once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s batch %(message)s")
    definitions = {}
    for item in args.job_definition:
        name, _, command = item.partition("=")
        definitions[name] = shlex.split(command)

    async def serve() -> None:
        runner = BatchRunner(definitions, args.max_parallel)
        app_runner = web.AppRunner(make_app(runner), access_log=None)
        await app_runner.setup()
        await web.TCPSite(app_runner, args.host, args.port).start()
        log.info("local Batch listening on %s:%s", args.host, args.port)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
