"""What the scheduler and the status service agree on about byom's Batch arrays.

The scheduler submits and terminates arrays; the status service reads their state
changes. Both depend on this module rather than on each other, so either can be
changed (or deployed) alone.
"""

from __future__ import annotations

# The reason a duplicate array is terminated with; its failures say nothing about the job.
DUPLICATE_REASON = "byom: duplicate submission"
# The container overrides the scheduler sets on a submission, and all it sets: the
# job a child works on and the trace it continues (settings come from the job
# definition). The local Batch runner accepts these names only.
OVERRIDE_VARIABLES = frozenset(
    {"BYOM_JOB_ID", "BYOM_PLAN_KEY", "BYOM_ARRAY_SIZE", "BYOM_TRACE_HEADER"}
)


def array_name(job_id: str, run: int = 0) -> str:
    """The name of a job's array: ``byom-<job id>``, and ``-r<n>`` for its n-th retry,
    so that a retry never takes an earlier run's array for its own."""
    # Batch names: up to 128 letters, digits, hyphens, underscores; job ids are hex.
    return f"byom-{job_id}" if run == 0 else f"byom-{job_id}-r{run}"


def is_duplicate(status_reason: str | None) -> bool:
    """Whether an array ended because the scheduler found it was a second submission."""
    return bool(status_reason) and str(status_reason).startswith(DUPLICATE_REASON)
