from __future__ import annotations

import itertools

import pytest

from shared.jobs import TRANSITIONS, can_transition, sources_of
from shared.schemas import JobState


def test_terminal_states_lead_nowhere():
    for state in (JobState.SUCCEEDED, JobState.FAILED):
        assert state.terminal
        assert not TRANSITIONS[state]
        assert all(not can_transition(state, target) for target in JobState)


def test_happy_path():
    path = [JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING, JobState.SUCCEEDED]
    assert all(can_transition(a, b) for a, b in itertools.pairwise(path))


def test_every_live_state_can_fail():
    for state in JobState:
        if not state.terminal:
            assert can_transition(state, JobState.FAILED)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.RUNNING, JobState.SUBMITTED),
        (JobState.SUBMITTED, JobState.ACCEPTED),
        (JobState.ACCEPTED, JobState.SUCCEEDED),
        (JobState.SUBMITTED, JobState.SUCCEEDED),
    ],
)
def test_no_going_back_or_skipping_the_work(current, target):
    assert not can_transition(current, target)


def test_sources_of_matches_the_table():
    for target in JobState:
        assert set(sources_of(target)) == {s for s in JobState if target in TRANSITIONS[s]}
    assert sources_of(JobState.SUCCEEDED) == [JobState.RUNNING]
