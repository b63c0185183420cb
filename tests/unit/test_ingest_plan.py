"""Ingest plans any file with a constant number of reads: the head, then arithmetic."""

from __future__ import annotations

import pytest

from services.ingest.ingest import Upload, plan_job
from shared.errors import InputError
from shared.schemas import BadRows, RowPolicy
from shared.settings import get_settings

ROW = b",".join(b"0.123456" for _ in range(30)) + b"\n"
GIB = 1024**3


class FakeObject:
    """A huge object of identical rows that exists only as arithmetic; counts reads."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head = size, head
        self.calls: list[tuple[int, int]] = []

    def byte_at(self, offset: int) -> int:
        if offset < len(self.head):
            return self.head[offset]
        return ROW[(offset - len(self.head)) % len(ROW)]

    def __call__(self, start: int, end: int) -> bytes:
        self.calls.append((start, end))
        end = min(end, self.size)
        return bytes(self.byte_at(i) for i in range(start, end))


def upload(size: int) -> Upload:
    return Upload("byom-local", "input/huge.csv", "etag", size, {})


@pytest.mark.parametrize("policy", [RowPolicy(), RowPolicy(on_bad_rows=BadRows.SKIP)])
def test_a_10_gib_upload_plans_with_a_bounded_number_of_reads(policy):
    size = 10 * GIB
    read = FakeObject(size, head=b"\xef\xbb\xbf" + b",".join(b"V%d" % i for i in range(30)) + b"\n")
    plan = plan_job("job", upload(size), policy, read=read)
    assert len(read.calls) <= 2
    assert sum(end - start for start, end in read.calls) <= 2 * 64 * 1024
    chunk_bytes = get_settings().chunk_bytes
    assert len(plan.chunks) == -(-(size - plan.data_start) // chunk_bytes)
    assert plan.header and plan.data_start == 3 + len(read.head) - 3
    assert plan.chunks[0].start == plan.data_start and plan.chunks[-1].end == size


def test_a_header_must_have_the_feature_count_s_width():
    read = FakeObject(10_000, head=b"id,name\n")
    with pytest.raises(InputError) as caught:
        plan_job("job", upload(10_000), RowPolicy(), read=read)
    assert caught.value.line == 1
    assert "header but has 2 columns" in caught.value.reason


def test_a_bad_row_in_the_head_fails_at_once_with_its_position():
    head = ROW * 3 + ROW.replace(b"0.123456", b"1e39", 1)
    read = FakeObject(1_000_000, head=head)
    with pytest.raises(InputError) as caught:
        plan_job("job", upload(1_000_000), RowPolicy(), read=read)
    assert (caught.value.line, caught.value.column) == (4, 1)
    assert "float32" in caught.value.reason


def test_a_header_wider_than_the_head_is_read_whole(monkeypatch):
    monkeypatch.setenv("BYOM_FEATURE_COUNT", "8000")
    get_settings.cache_clear()
    try:
        header = b",".join(b"feature_%d" % i for i in range(8000)) + b"\n"
        assert len(header) > 64 * 1024
        row = b",".join(b"1" for _ in range(8000)) + b"\n"
        read = FakeObject(len(header) + 3 * len(row), head=header + row * 3)
        plan = plan_job("job", upload(read.size), RowPolicy(), read=read)
        assert plan.header and plan.data_start == len(header)
    finally:
        get_settings.cache_clear()
