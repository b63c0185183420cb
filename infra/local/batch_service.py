"""The local Batch's jobs: each submitted job's children run as processes, as Batch runs them.

Each array child runs the job definition's command with Batch's variables
(``AWS_BATCH_JOB_ID``, ``AWS_BATCH_JOB_ARRAY_INDEX``, ``AWS_BATCH_JOB_ATTEMPT``) and the
submission's overrides, and is retried up to ``retryStrategy.attempts`` times and killed
after ``timeout.attemptDurationSeconds``, as Batch does; every change of state goes to
EventBridge as Batch's "Batch Job State Change". :class:`BatchRunner` also answers
DescribeJobs, ListJobs, CancelJob and TerminateJob over the jobs it holds; the HTTP side
is ``batch_runner.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
import uuid
from typing import Any

import boto3

from infra.local import batch_api
from infra.local.batch_jobs import ACCOUNT, Child, Job, queue_arn
from infra.local.launch import ExecLauncher, ZygoteLauncher
from shared.batch_contract import OVERRIDE_VARIABLES

log = logging.getLogger("byom.local.batch")


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
            "jobArn": f"arn:aws:batch:local:{ACCOUNT}:job/{job_id}",
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
