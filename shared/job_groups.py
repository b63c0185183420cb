"""Jobs as people look at them: each SageMaker transform job with its objects' jobs.

A transform job runs one byom job per input object (``JobItem.transform_job_name``
and ``transform_index``). The CLI (``byom status``) and the local dashboard list
those under one entry for the transform job, in object order, beside the jobs
of uploads. Pure: used by both, and tested without AWS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.schemas import JobItem, JobState


@dataclass(frozen=True)
class TransformGroup:
    """A transform job as its objects' jobs show it (its own record may know more)."""

    name: str
    objects: tuple[JobItem, ...]  # in object order

    @property
    def created_at(self) -> datetime:
        return min(job.created_at for job in self.objects)

    @property
    def status(self) -> str:
        """SageMaker's word for where the objects stand: InProgress while any runs;
        then Failed if any failed, Stopped if any was cancelled, else Completed."""
        states = {job.state for job in self.objects}
        if any(not state.terminal for state in states):
            return "InProgress"
        if JobState.FAILED in states:
            return "Failed"
        if JobState.CANCELLED in states:
            return "Stopped"
        return "Completed"

    def count(self, state: JobState) -> int:
        return sum(job.state is state for job in self.objects)

    @property
    def chunks_done(self) -> int:
        return sum(job.chunks_done for job in self.objects)

    @property
    def chunk_count(self) -> int:
        return sum(job.chunk_count for job in self.objects)

    @property
    def rows(self) -> int:
        return sum(job.rows for job in self.objects)

    @property
    def bad_rows(self) -> int:
        return sum(job.bad_rows for job in self.objects)

    @property
    def first_error(self) -> str | None:
        return next((job.error for job in self.objects if job.error), None)


Entry = JobItem | TransformGroup


def _object_order(job: JobItem) -> tuple[int, str]:
    return (job.transform_index if job.transform_index is not None else -1, job.job_id)


def grouped(jobs: Iterable[JobItem]) -> list[Entry]:
    """Uploads' jobs as they are and one group per transform job, newest first."""
    entries: list[Entry] = []
    members: dict[str, list[JobItem]] = {}
    for job in jobs:
        if job.transform_job_name is None:
            entries.append(job)
        else:
            members.setdefault(job.transform_job_name, []).append(job)
    entries += [
        TransformGroup(name, tuple(sorted(objects, key=_object_order)))
        for name, objects in members.items()
    ]
    return sorted(entries, key=lambda entry: entry.created_at, reverse=True)
