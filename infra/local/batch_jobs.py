"""A local Batch job and its array children, as Batch's API shows them.

:class:`Job` answers DescribeJobs (:meth:`Job.describe`), ListJobs' JobSummary
(:meth:`Job.summary`) and an array child's summary (:meth:`Job.child_summary`), with the
job's status derived from its children's as Batch derives it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from infra.local.launch import ChildProcess

ACCOUNT = "123456789012"
_LIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


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
        return f"arn:aws:batch:local:{ACCOUNT}:job/{self.job_id}"

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
    return f"arn:aws:batch:{region}:{ACCOUNT}:job-queue/{queue}"
