"""The job table's scans: the jobs people list and the reaper sweeps.

The table holds one item per upload and expires them by TTL, so it stays small; a
filtered scan serves every question here (a state index would at larger scale).
Name claims share the table but have no ``state``: every filter here asks for one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.job_attrs import from_attrs, to_attrs
from shared.schemas import JobItem, JobState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class JobScans:
    table: str

    @property
    def client(self) -> DynamoDBClient:
        raise NotImplementedError

    def overdue(self, now_epoch: int) -> list[JobItem]:
        """Live jobs whose deadline is before ``now_epoch``."""
        live = [state for state in JobState if not state.terminal]
        values: dict[str, Any] = {":now": now_epoch}
        values.update({f":s{i}": state.value for i, state in enumerate(live)})
        return self._scan(
            "deadline_epoch < :now AND #state IN ("
            + ", ".join(f":s{i}" for i in range(len(live)))
            + ")",
            values,
            consistent=True,
        )

    def unannounced(self, finished_before: datetime) -> list[JobItem]:
        """Terminal jobs whose done event is not recorded as sent, ended before the cutoff.

        Whoever ends a job announces it at once; a job left here was ended by a
        process that died or failed to publish in between.
        """
        ended = [state for state in JobState if state.terminal]
        values: dict[str, Any] = {":cutoff": finished_before.isoformat().replace("+00:00", "Z")}
        values.update({f":s{i}": state.value for i, state in enumerate(ended)})
        return self._scan(
            "attribute_not_exists(event_sent) AND updated_at < :cutoff "
            "AND #state IN (" + ", ".join(f":s{i}" for i in range(len(ended))) + ")",
            values,
            consistent=True,
        )

    def recent(self, limit: int) -> list[JobItem]:
        """The newest jobs first, for people (the CLI, the dashboard). Name claims
        share the table but have no ``state``, and are left out."""
        jobs = self._scan("attribute_exists(#state)")
        return sorted(jobs, key=lambda job: job.created_at, reverse=True)[:limit]

    def of_transform_job(self, name: str) -> list[JobItem]:
        """The jobs of a SageMaker transform job's objects, in object order."""
        jobs = self._scan(
            "attribute_exists(#state) AND transform_job_name = :name", {":name": name}
        )
        return sorted(jobs, key=lambda job: (job.transform_index or 0, job.job_id))

    def starting_with(self, prefix: str) -> list[JobItem]:
        """The jobs whose id starts with ``prefix``."""
        return self._scan(
            "attribute_exists(#state) AND begins_with(job_id, :prefix)", {":prefix": prefix}
        )

    def _scan(
        self, filter_expression: str, values: dict[str, Any] | None = None, consistent: bool = False
    ) -> list[JobItem]:
        """A filtered scan: the table holds one item per upload and expires them by
        TTL, so it stays small; a state index would replace this at larger scale."""
        extra: dict[str, Any] = {"ExpressionAttributeValues": to_attrs(values)} if values else {}
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression=filter_expression,
            ExpressionAttributeNames={"#state": "state"},
            ConsistentRead=consistent,
            **extra,
        )
        return [
            JobItem.model_validate(from_attrs(item)) for page in pages for item in page["Items"]
        ]
