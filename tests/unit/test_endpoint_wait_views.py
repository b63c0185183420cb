"""A job waiting for a scale-to-zero endpoint says so, with the time waited, in
``byom status`` and on the dashboard; a finished job keeps its cold start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cli import views
from infra.local import dashboard_views
from shared.schemas import JobItem, JobState

WOKE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def job(state: JobState, **fields: Any) -> JobItem:
    return JobItem(
        job_id="job-1", state=state, bucket="b", input_key="input/a.csv", input_etag="e",
        input_size=10, output_key="output/a.csv", created_at=WOKE, updated_at=WOKE,
        deadline_epoch=0, expires_at=0, chunk_count=2, **fields,
    )  # fmt: skip


def rendered(table: Any) -> str:
    console = views.console()
    with console.capture() as captured:
        console.print(table)
    return captured.get()


def test_byom_status_shows_the_wait_while_it_lasts_and_after() -> None:
    waiting = job(JobState.WAITING_FOR_ENDPOINT, endpoint_wake_at=WOKE)
    text = rendered(views.job_detail(waiting, now=WOKE + timedelta(seconds=75)))
    assert "WAITING_FOR_ENDPOINT" in text
    assert "endpoint wait" in text and "1 min 15 s so far" in text
    done = job(JobState.SUCCEEDED, endpoint_wake_at=WOKE, endpoint_waited_seconds=80.0)
    text = rendered(views.job_detail(done, now=WOKE + timedelta(hours=1)))
    assert "endpoint wait" in text and "1 min 20 s" in text and "so far" not in text
    assert "endpoint wait" not in rendered(views.job_detail(job(JobState.RUNNING)))


def test_the_dashboard_shows_the_state_and_the_wait() -> None:
    waiting = job(JobState.WAITING_FOR_ENDPOINT, endpoint_wake_at=datetime.now(UTC))
    links = dashboard_views.Links(input=None, output=None, errors=None)
    page = dashboard_views.job_fragment(waiting, [], links, None, settled=False)
    assert 'data-state="WAITING_FOR_ENDPOINT"' in page
    assert 'id="endpoint-wait"' in page and "so far" in page
    row = dashboard_views.jobs_fragment([waiting])
    assert 'data-state="WAITING_FOR_ENDPOINT"' in row
