"""The emulated scale-to-zero inference component: copies, wakes, cold starts, scale-in,
on a clock the test moves."""

from __future__ import annotations

import math

import pytest

from model.server.capacity import NO_CAPACITY_MESSAGE, Capacity, NoCapacity, WrongComponent
from model.server.problems import ServiceError
from model.server.settings import ServerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def component(clock: Clock, **options: object) -> Capacity:
    return Capacity(name="byom-dev-model-ic", clock=clock, wall_clock=clock, **options)  # type: ignore[arg-type]


def test_a_warm_component_serves_at_once() -> None:
    capacity = component(Clock())
    capacity.admit()
    assert capacity.document()["desired_copies"] == capacity.current() == 1


def test_a_cold_component_refuses_with_sagemakers_words_until_woken() -> None:
    clock = Clock()
    capacity = component(clock, start_cold=True, wake_seconds=30)
    with pytest.raises(NoCapacity) as refused:
        capacity.admit()
    assert isinstance(refused.value, ServiceError)
    assert (refused.value.status, refused.value.message) == (400, NO_CAPACITY_MESSAGE)
    assert "no capacity" in NO_CAPACITY_MESSAGE.lower()
    capacity.set_desired(1)
    assert (capacity.document()["desired_copies"], capacity.current()) == (1, 0)
    clock.now += 29.9
    with pytest.raises(NoCapacity):
        capacity.admit()
    clock.now += 0.1
    capacity.admit()
    assert capacity.current() == 1


def test_only_a_raise_from_zero_is_a_wake() -> None:
    clock = Clock()
    capacity = component(clock, start_cold=True, wake_seconds=5)
    capacity.set_desired(1)
    capacity.set_desired(1)  # a second scheduler asking while the copy starts
    capacity.set_desired(2)
    assert capacity.wakes == 1
    clock.now += 5
    assert capacity.current() == 2
    capacity.set_desired(0)
    assert capacity.current() == 0
    capacity.set_desired(1)
    assert capacity.document()["wakes"] == 2


def test_a_component_that_never_wakes() -> None:
    clock = Clock()
    capacity = component(clock, start_cold=True, wake_seconds=math.inf)
    capacity.set_desired(1)
    clock.now += 1e9
    with pytest.raises(NoCapacity):
        capacity.admit()
    assert capacity.document()["desired_copies"] == 1


def test_a_cold_start_ends_by_itself() -> None:
    clock = Clock()
    capacity = component(clock, start_cold=True, cold_seconds=10, wake_seconds=math.inf)
    clock.now += 9.9
    assert capacity.current() == 0
    clock.now += 0.1
    capacity.admit()
    assert capacity.document()["desired_copies"] == 1
    assert capacity.wakes == 0  # nobody asked


def test_a_wake_before_the_cold_start_ends_is_ready_whichever_comes_first() -> None:
    clock = Clock()
    capacity = component(clock, start_cold=True, cold_seconds=10, wake_seconds=2)
    capacity.set_desired(1)
    clock.now += 2
    capacity.admit()
    assert capacity.wakes == 1


def test_an_idle_component_scales_in_and_an_invocation_keeps_it_up() -> None:
    clock = Clock()
    capacity = component(clock, scale_in_seconds=60)
    clock.now += 50
    capacity.admit()
    clock.now += 50
    capacity.admit()  # 50 s idle, not 60
    clock.now += 60
    assert capacity.current() == 0
    document = capacity.document()
    assert (document["desired_copies"], document["scale_ins"]) == (0, 1)
    with pytest.raises(NoCapacity):
        capacity.admit()


def test_a_request_must_name_the_component() -> None:
    capacity = component(Clock())
    capacity.check_named("byom-dev-model-ic")
    for named in (None, "", "another-ic"):
        with pytest.raises(WrongComponent) as refused:
            capacity.check_named(named)
        assert refused.value.status == 400
        assert "byom-dev-model-ic" in refused.value.message


def test_the_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Capacity.from_settings(ServerSettings()) is None
    monkeypatch.setenv("BYOM_INFERENCE_COMPONENT", "byom-dev-model-ic")
    monkeypatch.setenv("BYOM_START_COLD", "true")
    monkeypatch.setenv("BYOM_WAKE_SECONDS", "inf")
    monkeypatch.setenv("BYOM_COLD_SECONDS", "12.5")
    monkeypatch.setenv("BYOM_SCALE_IN_SECONDS", "300")
    capacity = Capacity.from_settings(ServerSettings())
    assert capacity is not None
    assert (capacity.name, capacity.start_cold, capacity.wake_seconds) == (
        "byom-dev-model-ic",
        True,
        math.inf,
    )
    assert (capacity.cold_seconds, capacity.scale_in_seconds) == (12.5, 300)
    assert capacity.current() == 0
