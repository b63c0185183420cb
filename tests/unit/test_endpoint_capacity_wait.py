"""An endpoint without capacity (scale-to-zero, waking) is waited for, not failed on.

The client is the scripted fake sagemaker-runtime client of the retry tests; the
refusal is SageMaker's own for an inference component with no copies.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from services.inference_worker.endpoint import Endpoint
from shared import chunk_timer, endpoint_capacity
from shared.errors import EndpointNoCapacity, EndpointUnavailable
from shared.schemas import JobItem, JobState
from tests.unit.test_endpoint_retries import ANSWER, AS_CSV, FakeRuntime, answers, raises

NO_CAPACITY_MESSAGE = (
    "Inference Component has no capacity to process this request. ApplicationAutoScaling "
    "may be in-progress (if configured) or try to increase the capacity by invoking "
    "UpdateInferenceComponentRuntimeConfig API."
)


def no_capacity() -> ClientError:
    response: Any = {
        "Error": {"Code": "ValidationError", "Message": NO_CAPACITY_MESSAGE},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "InvokeEndpoint")


def bad_request() -> ClientError:
    response: Any = {
        "Error": {"Code": "ValidationError", "Message": "Endpoint byom-other not found."},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "InvokeEndpoint")


def waiting_endpoint(client: FakeRuntime, wait_seconds: float = 60.0) -> Endpoint:
    return Endpoint(
        cast(Any, client), "byom-model", concurrency=2, attempts=2, backoff=0.001,
        backoff_max=0.001, inference_component="byom-model-ic", wait_seconds=wait_seconds,
        wait_poll_max=0.001,
    )  # fmt: skip


class NeverWakes(FakeRuntime):
    async def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        raise no_capacity()


def test_sagemakers_refusal_for_want_of_copies_is_told_from_a_bad_request() -> None:
    assert endpoint_capacity.is_no_capacity(no_capacity())
    assert not endpoint_capacity.is_no_capacity(bad_request())


def test_refusals_for_want_of_capacity_are_waited_out_without_spending_attempts() -> None:
    # More refusals than attempts: none of them is an attempt.
    client = FakeRuntime(*[raises(no_capacity())] * 5, answers())
    calls = waiting_endpoint(client)

    async def chunk() -> tuple[bytes, float]:
        timer = chunk_timer.start()
        answer = await calls.invoke(b"1,2\n", **AS_CSV)
        return answer, timer.timings().endpoint_wait_seconds

    answer, waited = asyncio.run(chunk())
    assert answer == ANSWER
    assert len(client.calls) == 6 and calls.retries == 0
    assert all(call["InferenceComponentName"] == "byom-model-ic" for call in client.calls)
    assert waited > 0  # the chunk's timing shows the cold start
    assert calls.waiting_since is None  # the wait is over


def test_an_endpoint_that_never_wakes_fails_after_the_bound_naming_it() -> None:
    client = NeverWakes()
    with pytest.raises(EndpointNoCapacity, match="BYOM_ENDPOINT_WAIT_SECONDS") as raised:
        asyncio.run(waiting_endpoint(client, wait_seconds=0.05).invoke(b"1\n", **AS_CSV))
    assert "byom-model-ic" in str(raised.value) and "no capacity" in str(raised.value)
    assert len(client.calls) > 1  # it asked again while it waited
    assert isinstance(raised.value, EndpointUnavailable)


def test_a_bad_request_is_still_a_rejection_not_a_wait() -> None:
    client = FakeRuntime(raises(bad_request()), answers())
    with pytest.raises(Exception, match="not found"):
        asyncio.run(waiting_endpoint(client).invoke(b"1\n", **AS_CSV))
    assert len(client.calls) == 1


def test_no_component_no_header() -> None:
    client = FakeRuntime(answers())
    plain = Endpoint(cast(Any, client), "byom-model", concurrency=1, attempts=1, backoff=0,
                     backoff_max=0)  # fmt: skip
    asyncio.run(plain.invoke(b"1\n", **AS_CSV))
    assert "InferenceComponentName" not in client.calls[0]


def _job(state: JobState, **fields: Any) -> JobItem:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    return JobItem(
        job_id="j", state=state, bucket="b", input_key="input/a.csv", input_etag="e",
        input_size=1, output_key="output/a.csv", created_at=now, updated_at=now,
        deadline_epoch=0, expires_at=0, **fields,
    )  # fmt: skip


def test_the_wait_a_job_shows() -> None:
    woke = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    later = woke + timedelta(seconds=42)
    waiting = _job(JobState.WAITING_FOR_ENDPOINT, endpoint_wake_at=woke)
    assert endpoint_capacity.waited(waiting, later) == 42
    done = _job(JobState.SUCCEEDED, endpoint_wake_at=woke, endpoint_waited_seconds=37.5)
    assert endpoint_capacity.waited(done, later) == 37.5
    assert endpoint_capacity.waited(_job(JobState.RUNNING), later) is None
