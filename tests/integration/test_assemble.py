"""Output assembly against a real moto server: order, server-side copies, repeatability."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from services.status.assemble import assemble, assemble_errors
from shared import aws, naming
from shared.multipart import MIN_PART
from shared.schemas import JobItem, JobState
from shared.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(moto_endpoint, monkeypatch, request):
    bucket = f"assemble-{request.node.name.replace('_', '-')}"[:63]
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("BYOM_BUCKET", bucket)
    aws.s3.cache_clear()
    get_settings.cache_clear()
    client = aws.s3()
    client.create_bucket(Bucket=bucket)
    yield client
    aws.s3.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def parts(s3):
    """The multipart calls the assembly makes on its client, in order.

    Each is (operation, part number, source key or bytes sent), recorded from
    botocore's own events on the client ``aws.s3()`` returns, which is the one
    the assembly uses.
    """
    calls: list[tuple[str, int, str | int]] = []

    def record(params, model, **_):
        if model.name == "UploadPartCopy":
            calls.append((model.name, params["PartNumber"], params["CopySource"]["Key"]))
        elif model.name == "UploadPart":
            calls.append((model.name, params["PartNumber"], len(params["Body"])))

    s3.meta.events.register("provide-client-params.s3", record)
    yield calls
    s3.meta.events.unregister("provide-client-params.s3", record)


def job_with(s3, outputs: list[bytes]) -> JobItem:
    now = datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC)
    job = JobItem(
        job_id="job-1", state=JobState.RUNNING, bucket=get_settings().bucket,
        input_key="input/x.csv", input_etag="e", input_size=1,
        output_key=naming.output_key("input/x.csv", now), created_at=now, updated_at=now,
        deadline_epoch=0, expires_at=0, chunk_count=len(outputs),
    )  # fmt: skip
    for index, body in enumerate(outputs):
        s3.put_object(Bucket=job.bucket, Key=naming.chunk_output_key(job.job_id, index), Body=body)
    return job


def lines(tag: str, size: int) -> bytes:
    line = f"{tag}\n".encode()
    return line * (size // len(line))


def test_small_outputs_are_joined_in_chunk_order(s3, parts):
    outputs = [f"{i}\n".encode() * (i + 1) for i in range(12)]
    job = job_with(s3, outputs)
    assert assemble(job) == sum(map(len, outputs))
    body = s3.get_object(Bucket=job.bucket, Key=job.output_key)["Body"].read()
    assert body == b"".join(outputs)
    # Too small to copy: one part, sent from here.
    assert parts == [("UploadPart", 1, len(body))]


def test_large_outputs_are_copied_server_side_and_mixed_with_small(s3, parts):
    outputs = [
        lines("a", MIN_PART + 10),  # copied
        lines("b", 1000),  # gathered
        lines("c", MIN_PART + 20),  # gathered after b, the buffer is not empty
        lines("d", 300),
        lines("e", MIN_PART * 2),  # gathered too: b, c and d are still buffered
    ]
    job = job_with(s3, outputs)
    assemble(job)
    # Chunk 0 went in server-side as part 1; the rest was sent as one part, the
    # buffer passing the part size only with e.
    assert parts == [
        ("UploadPartCopy", 1, naming.chunk_output_key(job.job_id, 0)),
        ("UploadPart", 2, sum(map(len, outputs[1:]))),
    ]
    head = s3.head_object(Bucket=job.bucket, Key=job.output_key)
    assert head["ETag"].strip('"').endswith("-2")
    body = s3.get_object(Bucket=job.bucket, Key=job.output_key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(outputs)).digest()


def test_a_retried_assembly_writes_the_same_bytes(s3):
    outputs = [lines("x", MIN_PART + 1), lines("y", 5000), lines("z", 7)]
    job = job_with(s3, outputs)
    assemble(job)
    first = s3.get_object(Bucket=job.bucket, Key=job.output_key)
    assemble(job)
    second = s3.get_object(Bucket=job.bucket, Key=job.output_key)
    assert first["Body"].read() == second["Body"].read()
    assert first["ETag"] == second["ETag"]


def test_missing_chunk_output_fails_without_writing(s3):
    job = job_with(s3, [b"1\n", b"2\n"])
    s3.delete_object(Bucket=job.bucket, Key=naming.chunk_output_key(job.job_id, 1))
    with pytest.raises(Exception, match="chunk outputs missing"):
        assemble(job)
    listed = s3.list_objects_v2(Bucket=job.bucket, Prefix="output/")
    assert listed.get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=job.bucket).get("Uploads")


def test_errors_report_gathers_chunk_reports(s3):
    job = job_with(s3, [b"1\n"])
    assert assemble_errors(job) is None
    for index, body in ((1, b"9,2,bad\n"), (0, b"3,1,worse\n")):
        s3.put_object(Bucket=job.bucket, Key=naming.chunk_errors_key(job.job_id, index), Body=body)
    key = assemble_errors(job)
    assert key == "errors/20261125T010203Z-x.csv"
    report = s3.get_object(Bucket=job.bucket, Key=key)["Body"].read()
    assert report == b"line,column,reason\n3,1,worse\n9,2,bad\n"


def test_groups_of_small_outputs_are_copied_server_side(s3, parts, monkeypatch):
    """Outputs too small to copy one by one are joined per group as each group is
    done; the final assembly copies the groups and reads only what has none."""
    from services.status.assemble import assemble_group

    monkeypatch.setenv("BYOM_OUTPUT_GROUP_CHUNKS", "3")
    get_settings.cache_clear()
    small = MIN_PART // 2  # three make a group big enough to copy
    outputs = [lines(str(i), small) for i in range(7)]
    job = job_with(s3, outputs)
    assemble_group(job, 0)
    assemble_group(job, 1)  # group 2 (chunk 6 alone) was never joined
    s3.put_object(  # a stale, wrong-sized group object is not trusted
        Bucket=job.bucket, Key=naming.group_output_key(job.job_id, 2), Body=b"stale\n"
    )
    parts.clear()
    assemble(job)
    body = s3.get_object(Bucket=job.bucket, Key=job.output_key)["Body"].read()
    assert body == b"".join(outputs)
    assert parts == [
        ("UploadPartCopy", 1, naming.group_output_key(job.job_id, 0)),
        ("UploadPartCopy", 2, naming.group_output_key(job.job_id, 1)),
        ("UploadPart", 3, len(outputs[6])),
    ]
