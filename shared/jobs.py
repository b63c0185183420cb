"""The job state machine and its DynamoDB store.

Every change is a conditional write, so a duplicate or late message can never
move a job backwards, count a chunk twice, or reopen a finished job.

The table also holds name claims (``name#<output key>``, see ``claim_output_key``).
They have no ``state``, so every scan here, which filters on ``state``, skips them,
and ``get`` never parses one as a job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared import aws, naming, tracing
from shared.errors import ByomError
from shared.job_attrs import from_attrs as _from_attrs
from shared.job_attrs import now as _now
from shared.job_attrs import timestamp as _timestamp
from shared.job_attrs import to_attrs as _to_attrs
from shared.job_scans import JobScans
from shared.schemas import JobItem, JobState, S3ObjectCreatedEvent
from shared.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Which states a job may move to from each state. Terminal states lead nowhere.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.ACCEPTED: frozenset(
        {JobState.WAITING_FOR_ENDPOINT, JobState.SUBMITTED, JobState.RUNNING, JobState.FAILED}
    ),
    # The array is submitted while the endpoint wakes (its id recorded, the state
    # kept): the first chunk done means the endpoint answered.
    JobState.WAITING_FOR_ENDPOINT: frozenset({JobState.RUNNING, JobState.FAILED}),
    JobState.SUBMITTED: frozenset({JobState.RUNNING, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
# A person's moves, outside the work's own: any live job may be cancelled, and a
# job that FAILED or was CANCELLED may be run again (``retry``), keeping the chunks
# it finished. A SUCCEEDED job is never reopened.
CANCELLABLE: frozenset[JobState] = frozenset(s for s in TRANSITIONS if not s.terminal)
RETRYABLE: frozenset[JobState] = frozenset({JobState.FAILED, JobState.CANCELLED})


def sources_of(target: JobState) -> list[JobState]:
    """The states from which ``target`` can be reached, in a stable order."""
    return [state for state in JobState if target in TRANSITIONS[state]]


def new_job(event: S3ObjectCreatedEvent) -> JobItem:
    """The job item for an upload, before anything about its content is known."""
    settings = get_settings()
    obj = event.detail.object
    now = datetime.now(UTC)
    return JobItem(
        job_id=job_id_of(event),
        state=JobState.ACCEPTED,
        bucket=event.detail.bucket.name,
        input_key=obj.key,
        input_etag=obj.etag.strip('"'),
        input_size=obj.size,
        output_key=naming.output_key(obj.key, now),
        created_at=now,
        updated_at=now,
        deadline_epoch=int(now.timestamp()) + settings.job_deadline_seconds,
        expires_at=int((now + timedelta(days=settings.job_ttl_days)).timestamp()),
        trace_id=tracing.current_trace_id(),
    )


def job_id_of(event: S3ObjectCreatedEvent) -> str:
    obj = event.detail.object
    return naming.job_id_for(event.detail.bucket.name, obj.key, obj.etag)


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class ChunkRecorded:
    """Outcome of recording one chunk's completion."""

    job: JobItem
    first_time: bool  # False when this completion had been counted already

    @property
    def all_done(self) -> bool:
        return self.job.chunks_done >= self.job.chunk_count


class JobStore(JobScans):
    """The job items: every state change a conditional write; the scans people and
    the reaper need come from :class:`JobScans`."""

    def __init__(self, table: str | None = None, client: DynamoDBClient | None = None) -> None:
        self.table = table or get_settings().jobs_table
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client or aws.dynamodb()

    def create(self, job: JobItem) -> bool:
        """Store a new job; False when a job with that id exists (a duplicate event)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_to_attrs(job.model_dump(mode="json", exclude_none=True)),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def claim_output_key(self, job_id: str, input_key: str, created_at: datetime) -> str:
        """Reserve an output name no other job has, and return it.

        The first candidate nobody else holds wins, in one conditional put each;
        a job that claims again (a retried ingest) gets the name it holds back.
        A claim expires with the jobs, which is safe: its name carries the
        creation second, which no later upload can have.
        """
        candidates = naming.output_key_candidates(input_key, created_at, job_id)
        expires_at = int((_now() + timedelta(days=get_settings().job_ttl_days)).timestamp())
        for candidate in candidates:
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=_to_attrs(
                        {
                            "job_id": naming.name_claim_id(candidate),
                            "owner": job_id,
                            "expires_at": expires_at,
                        }
                    ),
                    ConditionExpression="attribute_not_exists(job_id) OR #owner = :me",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues=_to_attrs({":me": job_id}),
                )
            except ClientError as exc:
                if _conditional_failed(exc):
                    continue
                raise
            return candidate
        raise ByomError(f"job {job_id}: every output name is taken: {candidates}")

    def owns_output(self, job_id: str, output_key: str) -> bool:
        """Whether ``output_key`` was claimed by this job (so it may delete it)."""
        response = self.client.get_item(
            TableName=self.table,
            Key=_to_attrs({"job_id": naming.name_claim_id(output_key)}),
            ConsistentRead=True,
        )
        return bool(_from_attrs(response.get("Item", {})).get("owner") == job_id)

    def get(self, job_id: str) -> JobItem | None:
        if job_id.startswith(naming.NAME_CLAIM_PREFIX):
            return None  # a name claim, not a job
        response = self.client.get_item(
            TableName=self.table, Key=_to_attrs({"job_id": job_id}), ConsistentRead=True
        )
        item = response.get("Item")
        return JobItem.model_validate(_from_attrs(item)) if item else None

    def _transition(
        self,
        job_id: str,
        target: JobState,
        sets: dict[str, Any],
        removes: tuple[str, ...] = (),
    ) -> JobItem | None:
        """Move the job to ``target`` if its current state allows it; None otherwise."""
        values: dict[str, Any] = {f":{key}": value for key, value in sets.items()}
        values[":target"] = target.value
        values[":now"] = _timestamp()
        sources = sources_of(target)
        values.update({f":from{i}": state.value for i, state in enumerate(sources)})
        assignments = [f"#{key} = :{key}" for key in sets]
        assignments += ["#state = :target", "updated_at = :now"]
        expression = "SET " + ", ".join(assignments)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        names = {f"#{key}": key for key in sets} | {"#state": "state"}
        return self._update_or_none(
            job_id,
            UpdateExpression=expression,
            ConditionExpression="#state IN ("
            + ", ".join(f":from{i}" for i in range(len(sources)))
            + ")",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_to_attrs(values),
        )

    def _update_or_none(self, job_id: str, **update: Any) -> JobItem | None:
        """A conditional UpdateItem on one job: the item as written, or None when
        its condition (the job's state, mostly) no longer holds."""
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=_to_attrs({"job_id": job_id}),
                ReturnValues="ALL_NEW",
                **update,
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return JobItem.model_validate(_from_attrs(response["Attributes"]))

    def wait_for_endpoint(self, job_id: str) -> JobItem | None:
        """The scheduler found the endpoint without capacity and asked for it: the
        job waits for it from now. None when the job is no longer ACCEPTED."""
        return self._transition(
            job_id, JobState.WAITING_FOR_ENDPOINT, {"endpoint_wake_at": _timestamp()}
        )

    def mark_submitted(self, job_id: str, batch_job_id: str) -> JobItem | None:
        """Record the array job; the state moves only if no chunk has finished yet
        (and stays WAITING_FOR_ENDPOINT while the endpoint wakes).

        None when another submission was recorded first or the job has ended: the
        caller must then stop the array it submitted, since nobody else knows it.
        """
        moved = self._transition(job_id, JobState.SUBMITTED, {"batch_job_id": batch_job_id})
        if moved is not None:
            return moved
        return self._update_or_none(
            job_id,
            UpdateExpression="SET batch_job_id = :id, updated_at = :now",
            ConditionExpression=(
                "#state IN (:running, :waiting) AND attribute_not_exists(batch_job_id)"
            ),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=_to_attrs(
                {
                    ":id": batch_job_id,
                    ":running": JobState.RUNNING.value,
                    ":waiting": JobState.WAITING_FOR_ENDPOINT.value,
                    ":now": _timestamp(),
                }
            ),
        )

    def record_chunk(
        self,
        job_id: str,
        chunk_index: int,
        rows: int,
        bad_rows: int = 0,
        endpoint_waited: float = 0.0,
    ) -> ChunkRecorded | None:
        """Count one chunk exactly once; None when the job is unknown.

        A completion that was counted before, or that arrives after the job
        ended, comes back with ``first_time=False`` and the job as it stands.
        The chunk index goes into a number set in the same write as the counters,
        so a redelivered completion fails the condition instead of counting again.
        The first chunk that waited for the endpoint's capacity sets the job's
        ``endpoint_waited_seconds`` (chunks waiting side by side wait alike).
        """
        values = {
            ":one": 1,
            ":rows": rows,
            ":bad": bad_rows,
            ":chunk": {chunk_index},
            ":index": chunk_index,
            ":running": JobState.RUNNING.value,
            ":accepted": JobState.ACCEPTED.value,
            ":submitted": JobState.SUBMITTED.value,
            ":waiting": JobState.WAITING_FOR_ENDPOINT.value,
            ":now": _timestamp(),
        }
        waited = ""
        if endpoint_waited > 0:
            values[":waited"] = Decimal(str(round(endpoint_waited, 3)))
            waited = ", endpoint_waited_seconds = if_not_exists(endpoint_waited_seconds, :waited)"
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=_to_attrs({"job_id": job_id}),
                UpdateExpression=(
                    "ADD chunks_done :one, #rows :rows, bad_rows :bad, done_chunks :chunk "
                    "SET #state = :running, updated_at = :now" + waited
                ),
                ConditionExpression=(
                    "#state IN (:accepted, :waiting, :submitted, :running) "
                    "AND NOT contains(done_chunks, :index)"
                ),
                ExpressionAttributeNames={"#state": "state", "#rows": "rows"},
                ExpressionAttributeValues=_to_attrs(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            old: Any = exc.response.get("Item")
            if not isinstance(old, dict) or not old:
                return None
            job = JobItem.model_validate(_from_attrs(old))
            return ChunkRecorded(job=job, first_time=False)
        return ChunkRecorded(
            job=JobItem.model_validate(_from_attrs(response["Attributes"])), first_time=True
        )

    def succeed(self, job_id: str, errors_key: str | None = None) -> JobItem | None:
        sets: dict[str, Any] = {"finished_at": _timestamp()}
        if errors_key:
            sets["errors_key"] = errors_key
        return self._transition(job_id, JobState.SUCCEEDED, sets, ("done_chunks",))

    def fail(self, job_id: str, error: str, errors_key: str | None = None) -> JobItem | None:
        sets: dict[str, Any] = {"finished_at": _timestamp(), "error": error[:2000]}
        if errors_key:
            sets["errors_key"] = errors_key
        return self._transition(job_id, JobState.FAILED, sets)

    def cancel(self, job_id: str, reason: str) -> JobItem | None:
        """Move a live job to CANCELLED; None when it had ended already (or is unknown).

        The chunks it counted stay counted (``done_chunks``), so a retry resumes.
        """
        values: dict[str, Any] = {
            ":cancelled": JobState.CANCELLED.value,
            ":now": _timestamp(),
            ":error": reason[:2000],
        }
        values.update({f":from{i}": state.value for i, state in enumerate(sorted(CANCELLABLE))})
        return self._update_or_none(
            job_id,
            UpdateExpression=(
                "SET #state = :cancelled, updated_at = :now, finished_at = :now, #error = :error"
            ),
            ConditionExpression="#state IN ("
            + ", ".join(f":from{i}" for i in range(len(CANCELLABLE)))
            + ")",
            ExpressionAttributeNames={"#state": "state", "#error": "error"},
            ExpressionAttributeValues=_to_attrs(values),
        )

    def reopen(
        self, job: JobItem, deadline_epoch: int, counted: dict[int, tuple[int, int]]
    ) -> JobItem | None:
        """Run an ended job again: ACCEPTED, one more retry, its ending forgotten.

        Conditional on the job being as the caller read it (the same state and
        retry count), so of two retries at once one wins; None for the other, or
        when the job is not FAILED or CANCELLED. ``counted`` (chunk index ->
        rows, bad rows) are the chunks the new run reuses: the counters start
        from them, and the new run scores and counts the others.
        """
        if job.state not in RETRYABLE:
            return None
        values: dict[str, Any] = {
            ":accepted": JobState.ACCEPTED.value,
            ":was": job.state.value,
            ":retries": job.retries,
            ":next": job.retries + 1,
            ":deadline": deadline_epoch,
            ":now": _timestamp(),
            ":done": len(counted),
            ":rows": sum(rows for rows, _ in counted.values()),
            ":bad": sum(bad for _, bad in counted.values()),
        }
        sets = "chunks_done = :done, #rows = :rows, bad_rows = :bad"
        removes = "batch_job_id, #error, finished_at, event_sent, errors_key"
        # The new run finds the endpoint as it is then: an earlier cold start is not its.
        removes += ", endpoint_wake_at, endpoint_waited_seconds"
        if counted:
            values[":chunks"] = set(counted)
            sets += ", done_chunks = :chunks"
        else:  # DynamoDB has no empty sets
            removes += ", done_chunks"
        same_retries = "retries = :retries"
        if job.retries == 0:  # an item written before items counted retries has none
            same_retries = "(attribute_not_exists(retries) OR retries = :retries)"
        return self._update_or_none(
            job.job_id,
            UpdateExpression=(
                "SET #state = :accepted, retries = :next, deadline_epoch = :deadline, "
                f"updated_at = :now, {sets} REMOVE {removes}"
            ),
            ConditionExpression="#state = :was AND " + same_retries,
            ExpressionAttributeNames={"#state": "state", "#error": "error", "#rows": "rows"},
            ExpressionAttributeValues=_to_attrs(values),
        )

    def mark_event_sent(self, job_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_to_attrs({"job_id": job_id}),
            UpdateExpression="SET event_sent = :yes",
            ExpressionAttributeValues=_to_attrs({":yes": True}),
        )

    def event_sent(self, job_id: str) -> bool:
        response = self.client.get_item(
            TableName=self.table,
            Key=_to_attrs({"job_id": job_id}),
            ProjectionExpression="event_sent",
            ConsistentRead=True,
        )
        return bool(_from_attrs(response.get("Item", {})).get("event_sent"))
