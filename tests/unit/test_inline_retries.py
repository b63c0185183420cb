"""The small-file path's endpoint retries: the workers' policy, bounded, then a failure."""

from __future__ import annotations

import pytest

from services.scheduler import inline
from shared.errors import EndpointUnavailable, ModelError
from shared.settings import Settings

FAST = Settings(invoke_attempts=4, invoke_backoff_seconds=0.001, invoke_backoff_max_seconds=0.002)


class Calls:
    """An endpoint call that fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.made = failures, error, 0

    def __call__(self) -> bytes:
        self.made += 1
        if self.made <= self.failures:
            raise self.error
        return b"0.5\n"


def test_transient_failures_are_retried_until_an_answer():
    call = Calls(3, inline._Transient("endpoint e: HTTP 500: boom"))
    assert inline.retrying(call, "e", FAST) == b"0.5\n"
    assert call.made == 4


def test_an_endpoint_that_stays_down_fails_after_the_attempts_with_the_last_error():
    call = Calls(100, inline._Transient("endpoint e: HTTP 503: down"))
    with pytest.raises(EndpointUnavailable, match=r"failed 4 times; last error: .*HTTP 503"):
        inline.retrying(call, "e", FAST)
    assert call.made == 4


def test_model_errors_are_not_retried():
    call = Calls(100, ModelError("the endpoint rejected the request: bad shape"))
    with pytest.raises(ModelError):
        inline.retrying(call, "e", FAST)
    assert call.made == 1


def test_the_waits_stay_within_the_budget(monkeypatch):
    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(inline.time, "sleep", sleep)
    monkeypatch.setattr(inline.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(inline.random, "uniform", lambda _low, high: high)  # the longest waits
    slow = Settings(invoke_attempts=10, invoke_backoff_seconds=5, invoke_backoff_max_seconds=30)
    call = Calls(100, inline._Transient("endpoint e: HTTP 500: boom"))
    with pytest.raises(EndpointUnavailable):
        inline.retrying(call, "e", slow)
    assert sum(slept) <= inline.RETRY_BUDGET_SECONDS
    assert call.made < 10
    # The defaults' waits: 0.4 + 0.8 + 1.6 + 3.2 + 6.4 s at most, six calls.
    slept.clear()
    call = Calls(100, inline._Transient("endpoint e: HTTP 500: boom"))
    with pytest.raises(EndpointUnavailable, match="failed 6 times"):
        inline.retrying(call, "e", Settings())
    assert call.made == 6 and sum(slept) == pytest.approx(12.4)


class ColdRuntime:
    """A sagemaker-runtime client of an endpoint whose component has no copies."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def invoke_endpoint(self, **kwargs: object) -> dict[str, object]:
        from tests.unit.test_endpoint_capacity_wait import no_capacity

        self.calls.append(kwargs)
        raise no_capacity()


def test_a_cold_endpoint_is_not_a_model_error_but_a_job_for_batch():
    # The scheduler catches NoCapacity, wakes the endpoint and submits the array:
    # a Lambda's minutes are too few to wait in.
    runtime = ColdRuntime()
    with pytest.raises(inline.NoCapacity):
        inline._invoke(runtime, "byom-model", b"1,2\n", component="byom-model-ic")  # type: ignore[arg-type]
    assert runtime.calls[0]["InferenceComponentName"] == "byom-model-ic"
    assert not isinstance(inline.NoCapacity("x"), (ModelError, EndpointUnavailable))
