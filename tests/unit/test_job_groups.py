"""Transform jobs listed with their objects (shared/job_groups.py), in the CLI's tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cli import views
from cli.control import settings_of
from cli.target import from_outputs
from shared.job_groups import TransformGroup, grouped
from shared.jobs import CANCELLABLE, RETRYABLE, TRANSITIONS
from shared.resume import worth_keeping
from shared.schemas import JobItem, JobState

BASE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def job(job_id: str, minute: int, state: JobState = JobState.SUCCEEDED, **changes) -> JobItem:
    created = BASE + timedelta(minutes=minute)
    values = {
        "job_id": job_id, "state": state, "bucket": "b", "input_key": f"input/{job_id}.csv",
        "input_etag": "e", "input_size": 10, "output_key": f"output/{job_id}.csv",
        "created_at": created, "updated_at": created, "deadline_epoch": 0, "expires_at": 0,
        "chunk_count": 2, "chunks_done": 2, "rows": 10,
    }  # fmt: skip
    return JobItem.model_validate(values | changes)


def obj(job_id: str, name: str, index: int, minute: int, state=JobState.SUCCEEDED) -> JobItem:
    return job(job_id, minute, state, transform_job_name=name, transform_index=index)


def test_objects_are_grouped_under_their_transform_job_in_object_order():
    upload_old, upload_new = job("u1", 0), job("u2", 10)
    objects = [obj("t2", "nightly", 2, 5), obj("t0", "nightly", 0, 5), obj("t1", "nightly", 1, 6)]
    other = obj("s0", "weekly", 0, 20)
    entries = grouped([upload_old, *objects, upload_new, other])
    assert [getattr(e, "name", None) or e.job_id for e in entries] == [  # type: ignore[union-attr]
        "weekly", "u2", "nightly", "u1",
    ]  # fmt: skip
    nightly = entries[2]
    assert isinstance(nightly, TransformGroup)
    assert [j.transform_index for j in nightly.objects] == [0, 1, 2]
    assert (nightly.chunk_count, nightly.rows) == (6, 30)


def test_a_transform_groups_status_is_sagemakers_word_for_its_objects():
    def status(*states: JobState) -> str:
        group = TransformGroup("n", tuple(obj(f"t{i}", "n", i, 0, s) for i, s in enumerate(states)))
        return group.status

    assert status(JobState.SUCCEEDED, JobState.RUNNING) == "InProgress"
    assert status(JobState.SUCCEEDED, JobState.SUCCEEDED) == "Completed"
    assert status(JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED) == "Failed"
    assert status(JobState.SUCCEEDED, JobState.CANCELLED) == "Stopped"


def test_the_jobs_table_shows_the_transform_job_then_its_objects():
    items = [job("u1", 0), obj("t0", "nightly", 0, 1), obj("t1", "nightly", 1, 1, JobState.FAILED)]
    items[2] = items[2].model_copy(update={"error": "s3://b/in/x.csv: line 3, column 2: bad"})
    console = views.console()
    with console.capture() as captured:
        console.print(views.jobs_table(items, now=BASE + timedelta(hours=1)))
    text = captured.get()
    assert "transform nightly" in text and "2 objects" in text and "Failed" in text
    assert text.index("transform nightly") < text.index("0: t0") < text.index("1: t1")
    assert text.index("1: t1") < text.index("u1")  # the transform job is newer


def test_a_cancelled_job_and_its_event_have_their_own_look():
    cancelled = job("c1", 0, JobState.CANCELLED, error="cancelled: by me")
    console = views.console()
    with console.capture() as captured:
        console.print(views.job_detail(cancelled.model_copy(update={"retries": 2})))
        console.print(views.event_line({"status": "CANCELLED", "job_id": "c1"}))
    assert "CANCELLED" in captured.get() and "retries" in captured.get()


def test_cancel_and_retry_are_a_persons_moves_outside_the_work():
    live = {JobState.ACCEPTED, JobState.WAITING_FOR_ENDPOINT, JobState.SUBMITTED, JobState.RUNNING}
    assert live == CANCELLABLE
    assert {JobState.FAILED, JobState.CANCELLED} == RETRYABLE
    assert JobState.CANCELLED.terminal and not TRANSITIONS[JobState.CANCELLED]
    assert all(JobState.CANCELLED not in moves for moves in TRANSITIONS.values())


def test_a_retry_keeps_the_plan_the_input_and_the_counted_chunks_only():
    done = frozenset({0, 2})
    assert worth_keeping("plan.json", done)
    assert worth_keeping("input.csv", done)
    assert worth_keeping("out/000000.csv", done) and worth_keeping("errors/000002.csv", done)
    assert not worth_keeping("out/000001.csv", done)  # a late write, never counted
    assert not worth_keeping("groups/000000.csv", done)


def test_the_command_points_the_services_code_at_a_deployed_stack():
    target = from_outputs(
        {
            "DataBucketName": "b", "JobsTableName": "t", "EventBusName": "e",
            "Region": "eu-west-1", "SchedulerQueueUrl": "https://sqs/q",
            "SageMakerTableName": "sm",
        },
        region="us-east-1", endpoint_url=None,
    )  # fmt: skip
    assert settings_of(target) == {
        "BYOM_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "BYOM_BUCKET": "b",
        "BYOM_JOBS_TABLE": "t", "BYOM_EVENT_BUS": "e", "BYOM_SAGEMAKER_TABLE": "sm",
        "BYOM_SCHEDULER_QUEUE_URL": "https://sqs/q",
    }  # fmt: skip


def test_the_dashboard_lists_a_transform_job_above_its_objects():
    from infra.local.dashboard_views import Links, job_fragment, jobs_fragment

    items = [job("u1", 0), obj("t1", "nightly", 1, 1), obj("t0", "nightly", 0, 1)]
    items.append(job("c1", 2, JobState.CANCELLED, error="cancelled: <by me>"))
    html = jobs_fragment(items)
    order = [html.index(marker) for marker in (
        'data-job-id="c1"', 'data-transform-job="nightly"', 'data-job-id="t0"',
        'data-job-id="t1"', 'data-job-id="u1"',
    )]  # fmt: skip
    assert order == sorted(order)
    assert 'data-state="Completed"' in html and 'data-state="CANCELLED"' in html
    assert "&lt;by me&gt;" in html  # escaped as every other error
    page = job_fragment(
        items[1].model_copy(update={"retries": 1}), [], Links(None, None, None), None, settled=True
    )
    assert "nightly, object 1" in page and "<dt>retries</dt><dd>1</dd>" in page
