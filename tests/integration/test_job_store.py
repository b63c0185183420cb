"""The job store's conditional writes, against a real moto server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from infra.local.resources import client
from shared.jobs import JobStore
from shared.schemas import JobItem, JobState

pytestmark = pytest.mark.integration


@pytest.fixture
def store(moto_endpoint, request):
    dynamodb = client("dynamodb", moto_endpoint, "us-east-1")
    table = f"jobs-{request.node.name}"[:200]
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return JobStore(table=table, client=dynamodb)


def new_job(job_id="job-1", chunks=3) -> JobItem:
    now = datetime.now(UTC)
    return JobItem(
        job_id=job_id, state=JobState.ACCEPTED, bucket="b", input_key="input/x.csv",
        input_etag="e", input_size=10, output_key="output/x.csv", created_at=now,
        updated_at=now, deadline_epoch=0, expires_at=0, chunk_count=chunks,
    )  # fmt: skip


def test_create_is_idempotent(store):
    assert store.create(new_job())
    assert not store.create(new_job())
    assert store.get("job-1").state is JobState.ACCEPTED
    assert store.get("missing") is None


def test_each_chunk_counts_once(store):
    store.create(new_job(chunks=3))
    first = store.record_chunk("job-1", 0, rows=10)
    assert first.first_time and first.job.chunks_done == 1 and first.job.state is JobState.RUNNING
    again = store.record_chunk("job-1", 0, rows=10)
    assert not again.first_time and again.job.chunks_done == 1 and again.job.rows == 10
    store.record_chunk("job-1", 2, rows=5)
    last = store.record_chunk("job-1", 1, rows=7)
    assert last.all_done and last.job.rows == 22
    assert store.record_chunk("unknown", 0, rows=1) is None


def test_concurrent_duplicates_count_once(store):
    store.create(new_job(chunks=20))
    deliveries = [i % 20 for i in range(100)]  # every chunk delivered five times
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: store.record_chunk("job-1", i, rows=1), deliveries))
    assert sum(r.first_time for r in results) == 20
    job = store.get("job-1")
    assert (job.chunks_done, job.rows) == (20, 20)


def test_many_concurrent_completions_are_never_lost(store):
    # moto's threaded server once lost 2 of 400 concurrent ADDs on one item (plain
    # moto.server); the local stack's moto serialises item writes, as DynamoDB makes
    # each one atomic (infra/local/moto_dynamodb_atomic.py).
    for job in range(3):
        store.create(new_job(f"job-{job}", chunks=300))
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda i, j=job: store.record_chunk(f"job-{j}", i, rows=1), range(300)))
        counted = store.get(f"job-{job}")
        assert (counted.chunks_done, counted.rows) == (300, 300)


def test_terminal_states_are_final(store):
    store.create(new_job(chunks=1))
    assert store.fail("job-1", "boom").state is JobState.FAILED
    assert store.succeed("job-1") is None
    assert store.fail("job-1", "again") is None
    late = store.record_chunk("job-1", 0, rows=1)
    assert not late.first_time and late.job.state is JobState.FAILED
    assert store.get("job-1").error == "boom"


def test_success_needs_running(store):
    store.create(new_job(chunks=1))
    assert store.succeed("job-1") is None  # no chunk finished yet
    store.record_chunk("job-1", 0, rows=4)
    done = store.succeed("job-1")
    assert done.state is JobState.SUCCEEDED and done.finished_at is not None


def test_submission_recorded_once(store):
    store.create(new_job())
    assert store.mark_submitted("job-1", "batch-a").state is JobState.SUBMITTED
    assert store.mark_submitted("job-1", "batch-b") is None
    assert store.get("job-1").batch_job_id == "batch-a"


def test_submission_after_first_chunk_keeps_running(store):
    store.create(new_job())
    store.record_chunk("job-1", 0, rows=1)
    job = store.mark_submitted("job-1", "batch-a")
    assert job.state is JobState.RUNNING and job.batch_job_id == "batch-a"


def test_event_sent_flag(store):
    store.create(new_job())
    assert not store.event_sent("job-1")
    store.mark_event_sent("job-1")
    assert store.event_sent("job-1")


CREATED = datetime(2026, 11, 25, 3, 33, 2, tzinfo=UTC)


def test_uploads_named_alike_in_one_second_claim_distinct_outputs(store):
    keys = ["input/a/b.csv", "input/a_b.csv", "input/a b.csv", "input/a:b.csv", "input/a_b.csv.gz"]
    claimed = [store.claim_output_key(f"{i:x}" * 32, key, CREATED) for i, key in enumerate(keys, 1)]
    assert claimed[0] == "output/20261125T033302Z-a_b.csv"  # the common case keeps its name
    assert len(set(claimed)) == len(keys)
    # Two uploads of one key in one second are two jobs: two names as well.
    assert store.claim_output_key("f" * 32, "input/a_b.csv", CREATED) not in claimed


def test_a_retried_claim_gets_its_own_name_back(store):
    first = store.claim_output_key("1" * 32, "input/x.csv", CREATED)
    taken = store.claim_output_key("2" * 32, "input/x.csv", CREATED)
    assert store.claim_output_key("1" * 32, "input/x.csv", CREATED) == first
    assert store.claim_output_key("2" * 32, "input/x.csv", CREATED) == taken
    assert store.owns_output("1" * 32, first) and not store.owns_output("2" * 32, first)
    assert not store.owns_output("1" * 32, "output/never-claimed.csv")


def test_name_claims_are_never_taken_for_jobs(store):
    output = store.claim_output_key("1" * 32, "input/x.csv", CREATED)
    assert store.get(f"name#{output}") is None
    assert store.overdue(2**40) == []
    assert store.unannounced(datetime(2100, 1, 1, tzinfo=UTC)) == []


def test_unannounced_lists_terminal_jobs_without_their_event(store):
    for job_id in ("live", "failed", "announced"):
        store.create(new_job(job_id))
    store.fail("failed", "boom")
    store.fail("announced", "boom")
    store.mark_event_sent("announced")
    later = datetime(2100, 1, 1, tzinfo=UTC)
    assert [job.job_id for job in store.unannounced(later)] == ["failed"]
    assert store.unannounced(datetime(2000, 1, 1, tzinfo=UTC)) == []  # within the grace


def test_a_submission_after_the_job_ended_is_not_recorded(store):
    store.create(new_job())
    store.fail("job-1", "boom")
    assert store.mark_submitted("job-1", "batch-a") is None
    assert store.get("job-1").batch_job_id is None


def test_a_job_waiting_for_its_endpoint_keeps_waiting_until_a_chunk_is_done(store):
    store.create(new_job(chunks=2))
    waiting = store.wait_for_endpoint("job-1")
    assert waiting.state is JobState.WAITING_FOR_ENDPOINT and waiting.endpoint_wake_at
    assert store.wait_for_endpoint("job-1") is None  # once, from ACCEPTED only
    # The array is recorded while the endpoint wakes; the state says what the job waits for.
    submitted = store.mark_submitted("job-1", "array-1")
    assert submitted.state is JobState.WAITING_FOR_ENDPOINT and submitted.batch_job_id == "array-1"
    assert store.mark_submitted("job-1", "array-2") is None
    first = store.record_chunk("job-1", 1, rows=5, endpoint_waited=12.3456)
    assert first.job.state is JobState.RUNNING
    assert first.job.endpoint_waited_seconds == pytest.approx(12.346)
    # A later chunk's wait does not replace the first one's.
    last = store.record_chunk("job-1", 0, rows=5, endpoint_waited=20)
    assert last.all_done and last.job.endpoint_waited_seconds == pytest.approx(12.346)


def test_a_job_that_never_waited_records_no_wait(store):
    store.create(new_job(chunks=1))
    assert store.record_chunk("job-1", 0, rows=1).job.endpoint_waited_seconds is None
    assert store.fail("job-1", "x") is not None
    store.create(new_job("job-2", chunks=1))
    store.wait_for_endpoint("job-2")
    failed = store.fail("job-2", "endpoint never woke")
    assert failed.state is JobState.FAILED  # a waiting job can fail
