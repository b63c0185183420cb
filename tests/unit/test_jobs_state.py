from __future__ import annotations

import itertools

import pytest

from shared.jobs import TRANSITIONS, sources_of
from shared.schemas import JobState


def test_terminal_states_lead_nowhere():
    for state in (JobState.SUCCEEDED, JobState.FAILED):
        assert state.terminal
        assert not TRANSITIONS[state]
        assert all(target not in TRANSITIONS[state] for target in JobState)


def test_happy_path():
    path = [JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING, JobState.SUCCEEDED]
    assert all((b in TRANSITIONS[a]) for a, b in itertools.pairwise(path))


def test_every_live_state_can_fail():
    for state in JobState:
        if not state.terminal:
            assert JobState.FAILED in TRANSITIONS[state]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.RUNNING, JobState.SUBMITTED),
        (JobState.SUBMITTED, JobState.ACCEPTED),
        (JobState.ACCEPTED, JobState.SUCCEEDED),
        (JobState.SUBMITTED, JobState.SUCCEEDED),
        (JobState.WAITING_FOR_ENDPOINT, JobState.SUCCEEDED),
        (JobState.WAITING_FOR_ENDPOINT, JobState.ACCEPTED),
        (JobState.SUBMITTED, JobState.WAITING_FOR_ENDPOINT),
    ],
)
def test_no_going_back_or_skipping_the_work(current, target):
    assert target not in TRANSITIONS[current]


# Every allowed move, written out rather than read back from TRANSITIONS, so that
# a change to the table has to change this list too. ACCEPTED -> RUNNING: a
# chunk's completion may be counted before the scheduler's write of SUBMITTED.
# WAITING_FOR_ENDPOINT: the scheduler woke a scale-to-zero endpoint; the array runs
# meanwhile (its id recorded, the state kept) and the first chunk done ends the wait.
ALLOWED = {
    (JobState.ACCEPTED, JobState.WAITING_FOR_ENDPOINT),
    (JobState.WAITING_FOR_ENDPOINT, JobState.RUNNING),
    (JobState.WAITING_FOR_ENDPOINT, JobState.FAILED),
    (JobState.ACCEPTED, JobState.SUBMITTED),
    (JobState.ACCEPTED, JobState.RUNNING),
    (JobState.ACCEPTED, JobState.FAILED),
    (JobState.SUBMITTED, JobState.RUNNING),
    (JobState.SUBMITTED, JobState.FAILED),
    (JobState.RUNNING, JobState.SUCCEEDED),
    (JobState.RUNNING, JobState.FAILED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobState, JobState)))
def test_exactly_the_listed_moves_are_allowed(current, target):
    assert (target in TRANSITIONS[current]) == ((current, target) in ALLOWED)


def test_sources_of_each_state():
    assert sources_of(JobState.ACCEPTED) == []
    assert sources_of(JobState.SUBMITTED) == [JobState.ACCEPTED]
    assert sources_of(JobState.WAITING_FOR_ENDPOINT) == [JobState.ACCEPTED]
    assert sources_of(JobState.RUNNING) == [
        JobState.ACCEPTED,
        JobState.WAITING_FOR_ENDPOINT,
        JobState.SUBMITTED,
    ]
    assert sources_of(JobState.SUCCEEDED) == [JobState.RUNNING]
    assert sources_of(JobState.FAILED) == [
        JobState.ACCEPTED,
        JobState.WAITING_FOR_ENDPOINT,
        JobState.SUBMITTED,
        JobState.RUNNING,
    ]
