"""Array sizing, the inline path's pure parts, and which Batch failures end a job."""

from __future__ import annotations

import pytest

from services.scheduler import batch_jobs, inline
from services.scheduler.scheduler import MAX_ARRAY_SIZE, capacity, size_array
from services.status import batch_events
from shared import chunk_output
from shared.errors import InputError
from shared.schemas import BatchJobStateChange
from shared.settings import Settings

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("chunks", "data_bytes", "per_child", "cap", "children"),
    [
        (1, 10, 64 * MIB, 256, 1),  # tiny: one child
        (16, 64 * MIB, 64 * MIB, 256, 1),  # exactly one child's worth
        (17, 64 * MIB + 1, 64 * MIB, 256, 2),  # a byte more: a second child
        (2560, 10 * 1024 * MIB, 64 * MIB, 256, 160),  # 10 GiB: by bytes
        (2560, 10 * 1024 * MIB, 16 * MIB, 256, 256),  # capped by the capacity
        (3, 1024 * MIB, 64 * MIB, 256, 3),  # never more children than chunks
        (10**6, 10**15, 1, 10**6, MAX_ARRAY_SIZE),  # Batch's own limit
    ],
)
def test_size_array(chunks, data_bytes, per_child, cap, children):
    plan = size_array(chunks, data_bytes=data_bytes, bytes_per_child=per_child, capacity=cap)
    assert plan.children == children
    assert plan.children * plan.chunks_per_child >= chunks
    assert (plan.children - 1) * plan.chunks_per_child < chunks  # no idle child


def test_capacity_is_the_compute_environments_vcpus_within_the_cap():
    assert capacity(Settings(max_vcpus=256, worker_vcpus=1, max_array_children=50)) == 50
    assert capacity(Settings(max_vcpus=64, worker_vcpus=2, max_array_children=500)) == 32
    assert capacity(Settings(max_vcpus=16, worker_vcpus=0.25, max_array_children=500)) == 64
    assert capacity(Settings(max_vcpus=1, worker_vcpus=4, max_array_children=50)) == 1


def test_requests_are_whole_lines_within_the_limit():
    lines = [f"{i},{i * 2}\n".encode() for i in range(500)]
    payload = b"".join(lines)
    pieces = inline.requests_of(payload, 64)
    assert b"".join(pieces) == payload
    assert all(len(p) <= 64 and p.endswith(b"\n") for p in pieces)
    assert inline.requests_of(b"a" * 100 + b"\nb\n", 10) == [b"a" * 100 + b"\n", b"b\n"]
    assert inline.requests_of(b"1,2", 10) == [b"1,2"]


def test_blanks_and_errors_report():
    rejected = {
        1: InputError("s3://b/k", "'x' is not a number", line=3, column=2),
        3: InputError("s3://b/k", "empty line", line=5),
    }
    assert chunk_output.with_blanks(b"0.1\n0.2\n", 4, rejected) == b"0.1\n\n0.2\n\n"
    assert chunk_output.errors_csv(rejected) == b"3,2,'x' is not a number\n5,,empty line\n"
    assert chunk_output.counts(chunk_output.metadata(4, 2)) == (4, 2)
    assert chunk_output.counts({}) is None


def batch_failure(job_id: str, batch_job_id: str, reason: str) -> BatchJobStateChange:
    return BatchJobStateChange.model_validate(
        {
            "source": "aws.batch",
            "detail-type": "Batch Job State Change",
            "detail": {
                "jobId": f"{batch_job_id}:0",
                "jobName": batch_jobs.job_name(job_id),
                "status": "FAILED",
                "statusReason": reason,
                "container": {"environment": [{"name": "BYOM_JOB_ID", "value": job_id}]},
            },
        }
    )


class FakeStore:
    def __init__(self, batch_job_id: str | None) -> None:
        self.batch_job_id = batch_job_id

    def get(self, job_id: str):
        job = {"job_id": job_id, "batch_job_id": self.batch_job_id, "retries": 0}
        return type("Job", (), job)()


@pytest.mark.parametrize(
    ("recorded", "failed", "reason", "ends_job"),
    [
        ("A", "A", "Essential container in task exited with code -9", True),
        ("A", "B", f"{batch_jobs.DUPLICATE_REASON}; kept A", False),
        ("A", "B", "Essential container in task exited with code 1", False),
        # The scheduler died before recording its array: the array is the job's.
        (None, "A", "Essential container in task exited with code -9", True),
        (None, "B", f"{batch_jobs.DUPLICATE_REASON}; kept A", False),
    ],
)
def test_failures_of_terminated_duplicates_are_ignored(
    monkeypatch, recorded, failed, reason, ends_job
):
    ended = []
    monkeypatch.setattr(batch_events, "fail", lambda job_id, error, store, **_: ended.append(error))
    batch_events.handle_batch_event(batch_failure("j1", failed, reason), FakeStore(recorded))
    assert bool(ended) is ends_job


def test_the_output_header_names_as_many_columns_as_the_model_answers():
    assert chunk_output.header_line(("prediction",), b"0.1\n0.2\n") == b"prediction\n"
    assert chunk_output.header_line(("p",), b"\n0.1,0.7,0.2\n") == b"p_0,p_1,p_2\n"
    assert chunk_output.header_line(("legit", "fraud"), b"0.9,0.1\n") == b"legit,fraud\n"
    # Every row of the first chunk rejected: the model's own names.
    assert chunk_output.header_line(("probability", "label"), b"\n\n") == b"probability,label\n"
