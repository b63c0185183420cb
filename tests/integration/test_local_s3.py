"""The local S3 (infra/local/moto_server.py) over a real socket: S3's semantics, and ranged
GETs, part copies and multipart completions that read only the bytes they need."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local import resources
from infra.local.moto_s3_reads import COUNTER_PATH
from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.stack import REPO

pytestmark = pytest.mark.integration

REGION = "us-east-1"
MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest non-last part
BIG = os.urandom(6 * MIB + 3)  # past moto's in-memory spool (5 MiB - 1 KiB): a file on disk
SMALL = os.urandom(1000)  # stays in the spool's memory


def start_moto(tmp_path_factory, name: str, **env: str) -> tuple[Service, str]:
    port = free_port()
    service = Service(
        name=name,
        command=[
            sys.executable,
            "-m",
            "infra.local.moto_server",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={"PATH": "/usr/bin:/bin", "BYOM_MOTO_READ_COUNTER": "1", **env},
        log_path=tmp_path_factory.mktemp(name) / "moto.log",
        cwd=REPO,
    )
    service.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: service.check_alive() and http_ok(f"{endpoint}/moto-api/"),
            timeout=30,
            what=name,
        )
    except BaseException:
        service.stop()
        raise
    return service, endpoint


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    service, url = start_moto(tmp_path_factory, "patched-moto")
    yield url
    service.stop()


@pytest.fixture(scope="module")
def plain_endpoint(tmp_path_factory):
    """moto as it ships, with only the read counter: the reference for behaviour and cost."""
    service, url = start_moto(tmp_path_factory, "plain-moto", BYOM_MOTO_S3_PATCH="0")
    yield url
    service.stop()


def client(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def bytes_read(url: str) -> int:
    with urllib.request.urlopen(f"{url}{COUNTER_PATH}", timeout=5) as response:
        total: int = json.load(response)["bytes_read"]
        return total


def make_bucket(url: str, name: str, objects: dict[str, bytes]):
    s3 = client(url)
    s3.create_bucket(Bucket=name)
    for key, body in objects.items():
        s3.put_object(Bucket=name, Key=key, Body=body)
    return s3


@pytest.fixture
def s3(endpoint, request):
    name = re.sub(r"[^a-z0-9]+", "-", f"s3-{request.node.name}".lower())[:60].strip("-")
    return make_bucket(endpoint, name, {"big": BIG, "small": SMALL, "empty": b""}), name


def ranged_get(s3, bucket: str, key: str, spec: str) -> tuple[int, str | None, bytes]:
    """(status, Content-Range, body), or (status, error code, b"") when S3 refuses."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key, Range=spec)
    except ClientError as error:
        return (
            error.response["ResponseMetadata"]["HTTPStatusCode"],
            error.response["Error"]["Code"],
            b"",
        )
    body = response["Body"].read()
    assert response["ContentLength"] == len(body)
    return response["ResponseMetadata"]["HTTPStatusCode"], response.get("ContentRange"), body


def expected(spec: str, data: bytes) -> tuple[int, str | None, bytes]:
    """A single byte range as S3 answers it (RFC 9110), for a non-empty object."""
    size = len(data)
    first, last = spec.removeprefix("bytes=").split("-")
    if first == "":
        start, stop = max(0, size - int(last)), size
    else:
        start = int(first)
        if start >= size:
            return 416, "InvalidRange", b""
        stop = size if last == "" else min(int(last), size - 1) + 1
    return 206, f"bytes {start}-{stop - 1}/{size}", data[start:stop]


def edge_ranges(size: int) -> list[str]:
    edges = {0, 1, size // 2, MIB - 1, MIB, MIB + 1, size - 2, size - 1}
    specs = ["bytes=0-0", "bytes=0-", f"bytes={size - 1}-", f"bytes={size - 1}-{size - 1}"]
    specs += ["bytes=-1", f"bytes=-{size}", f"bytes=-{size + 10}", f"bytes=3-{size + 100}"]
    specs += [f"bytes={a}-{b}" for a in edges for b in edges if 0 <= a <= b < size]
    return specs


@pytest.mark.parametrize("key", ["big", "small"])
def test_ranges_are_exactly_the_slices_s3_returns(s3, key):
    s3, bucket = s3
    data = {"big": BIG, "small": SMALL}[key]
    for spec in edge_ranges(len(data)):
        assert ranged_get(s3, bucket, key, spec) == expected(spec, data), spec


def test_ranges_past_the_end_are_416_invalid_range(s3):
    s3, bucket = s3
    size = len(BIG)
    for spec in [f"bytes={size}-", f"bytes={size}-{size + 5}", f"bytes={size + 9}-"]:
        assert ranged_get(s3, bucket, "big", spec) == (416, "InvalidRange", b""), spec


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_ranges_match_slices(s3, data):
    s3, bucket = s3
    size = len(BIG)
    start = data.draw(st.integers(0, size - 1), label="start")
    length = data.draw(st.integers(1, 3 * MIB), label="length")
    spec = f"bytes={start}-{start + length - 1}"
    assert ranged_get(s3, bucket, "big", spec) == expected(spec, BIG)


def test_an_empty_object_reads_empty_and_refuses_ranges(s3):
    s3, bucket = s3
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
    for spec in ["bytes=0-", "bytes=0-0", "bytes=0-10"]:
        assert ranged_get(s3, bucket, "empty", spec) == (416, "InvalidRange", b""), spec


def test_odd_range_headers_are_answered_as_plain_moto_answers_them(endpoint, plain_endpoint):
    # Multiple ranges, reversed or unparsable ones, suffixes of an empty object: whatever
    # moto does with them, the patch must not change.
    objects = {"big": BIG, "small": SMALL, "empty": b"", "one": b"x"}
    patched = make_bucket(endpoint, "odd-ranges", objects)
    plain = make_bucket(plain_endpoint, "odd-ranges", objects)
    specs = ["bytes=0-1,4-5", "bytes=5-3", "bytes=abc", "bytes=-0", "bytes=-5", "bytes=1-"]
    specs += ["bytes=0-0", "bytes=-1", "bytes=0-"]
    for key in objects:
        for spec in specs:
            theirs = ranged_get(plain, "odd-ranges", key, spec)
            assert ranged_get(patched, "odd-ranges", key, spec) == theirs, (key, spec)


def test_whole_gets_stream_every_byte(s3):
    s3, bucket = s3
    for key, data in [("big", BIG), ("small", SMALL)]:
        response = s3.get_object(Bucket=bucket, Key=key)
        assert response["ContentLength"] == len(data)
        assert response["Body"].read() == data
        assert response["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_conditional_gets_and_heads(s3):
    s3, bucket = s3
    etag = f'"{hashlib.md5(BIG).hexdigest()}"'
    body = s3.get_object(Bucket=bucket, Key="big", IfMatch=etag, Range="bytes=10-19")["Body"]
    assert body.read() == BIG[10:20]
    assert s3.get_object(Bucket=bucket, Key="big", IfNoneMatch='"other"')["Body"].read() == BIG
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as stale:
            call(Bucket=bucket, Key="big", IfMatch='"0123"')
        assert stale.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        with pytest.raises(ClientError) as unchanged:
            call(Bucket=bucket, Key="big", IfNoneMatch=etag, Range="bytes=0-9")
        assert unchanged.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_concurrent_ranged_reads_of_one_key_do_not_interfere(s3):
    s3, bucket = s3
    # Overlapping ranges from 8 threads at once: a shared file position would mix them up.
    specs = [
        f"bytes={start}-{start + MIB + 12_345}" for start in range(0, len(BIG) - 2 * MIB, 99_991)
    ]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda spec: ranged_get(s3, bucket, "big", spec), specs))
    assert results == [expected(spec, BIG) for spec in specs]


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def test_multipart_with_part_copies_gives_the_bytes_and_the_etag_of_s3(s3):
    s3, bucket = s3
    first = os.urandom(PART)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="joined")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="joined", UploadId=upload, PartNumber=1, Body=first)[
            "ETag"
        ]
    ]
    for number, (key, copy_range) in enumerate(
        [("big", "bytes=7-5242886"), ("big", f"bytes=3-{len(BIG) - 1}"), ("small", None)],
        start=2,
    ):
        extra = {"CopySourceRange": copy_range} if copy_range else {}
        copied = s3.upload_part_copy(
            Bucket=bucket, Key="joined", UploadId=upload, PartNumber=number,
            CopySource={"Bucket": bucket, "Key": key}, **extra,
        )  # fmt: skip
        etags.append(copied["CopyPartResult"]["ETag"])
    pieces = [first, BIG[7:5242887], BIG[3:], SMALL]
    assert etags == [f'"{md5(piece).hex()}"' for piece in pieces]

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="joined", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )  # fmt: skip
    etag = f'"{hashlib.md5(b"".join(map(md5, pieces))).hexdigest()}-4"'
    assert done["ETag"] == etag
    response = s3.get_object(Bucket=bucket, Key="joined")
    assert (response["ETag"], response["Body"].read()) == (etag, b"".join(pieces))
    whole = b"".join(pieces)
    spec = f"bytes={PART - 5}-{PART + 4}"
    assert ranged_get(s3, bucket, "joined", spec) == expected(spec, whole)


def test_multipart_refusals_are_s3s(s3):
    s3, bucket = s3
    upload = s3.create_multipart_upload(Bucket=bucket, Key="refused")["UploadId"]
    parts = []
    for number in (1, 2):
        put = s3.upload_part(
            Bucket=bucket, Key="refused", UploadId=upload, PartNumber=number, Body=SMALL
        )
        parts.append({"PartNumber": number, "ETag": put["ETag"]})
    for bad, code in [
        ([{"PartNumber": 1, "ETag": '"0123"'}], "InvalidPart"),
        (parts, "EntityTooSmall"),
    ]:
        with pytest.raises(ClientError) as refused:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="refused", UploadId=upload, MultipartUpload={"Parts": bad}
            )
        assert refused.value.response["Error"]["Code"] == code


# S3 offers full-object multipart checksums only for the CRC algorithms.
@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("SHA256", "COMPOSITE"), ("CRC32", "COMPOSITE"), ("CRC32", "FULL_OBJECT")],
)
def test_multipart_checksums_are_s3s(s3, algorithm, kind):
    s3, bucket = s3
    pieces = [BIG[:PART], SMALL]
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="summed", ChecksumAlgorithm=algorithm, ChecksumType=kind
    )["UploadId"]
    parts = []
    for number, piece in enumerate(pieces, 1):
        put = s3.upload_part(
            Bucket=bucket, Key="summed", UploadId=upload, PartNumber=number, Body=piece,
            ChecksumAlgorithm=algorithm,
        )  # fmt: skip
        parts.append({"PartNumber": number, "ETag": put["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="summed", UploadId=upload, MultipartUpload={"Parts": parts}
    )

    def raw(data: bytes) -> bytes:
        if algorithm == "CRC32":
            return binascii.crc32(data).to_bytes(4, "big")
        return hashlib.sha256(data).digest()

    if kind == "COMPOSITE":
        value = base64.b64encode(raw(b"".join(map(raw, pieces)))).decode() + f"-{len(pieces)}"
    else:
        value = base64.b64encode(raw(b"".join(pieces))).decode()
    response = s3.get_object(Bucket=bucket, Key="summed", ChecksumMode="ENABLED")
    assert response[f"Checksum{algorithm}"] == value
    assert response["Body"].read() == b"".join(pieces)


def test_a_small_range_costs_the_range_whatever_the_object_size(endpoint):
    sizes = {"one-mib": MIB + 1, "six-mib": len(BIG), "forty-mib": 40 * MIB}
    s3 = make_bucket(endpoint, "read-cost", {key: os.urandom(size) for key, size in sizes.items()})
    for key, size in sizes.items():
        before = bytes_read(endpoint)
        body = s3.get_object(
            Bucket="read-cost", Key=key, Range=f"bytes={size // 2}-{size // 2 + 65535}"
        )
        assert len(body["Body"].read()) == 65536
        assert bytes_read(endpoint) - before == 65536, key
    before = bytes_read(endpoint)
    assert len(s3.get_object(Bucket="read-cost", Key="forty-mib")["Body"].read()) == 40 * MIB
    assert bytes_read(endpoint) - before == 40 * MIB  # a whole GET reads each byte once

    upload = s3.create_multipart_upload(Bucket="read-cost", Key="copy")["UploadId"]
    before = bytes_read(endpoint)
    s3.upload_part_copy(
        Bucket="read-cost", Key="copy", UploadId=upload, PartNumber=1,
        CopySource={"Bucket": "read-cost", "Key": "forty-mib"}, CopySourceRange="bytes=100-199",
    )  # fmt: skip
    assert bytes_read(endpoint) - before == 100


def test_plain_moto_reads_the_whole_object_for_a_small_range(plain_endpoint):
    # What the counter sees without the patch: the check above would fail on moto as it ships.
    size = 12 * MIB
    s3 = make_bucket(plain_endpoint, "plain-cost", {"object": os.urandom(size)})
    before = bytes_read(plain_endpoint)
    s3.get_object(Bucket="plain-cost", Key="object", Range="bytes=0-65535")["Body"].read()
    assert bytes_read(plain_endpoint) - before >= size


async def aio_reads(url: str, bucket: str) -> list[bytes]:
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=url, region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
    ) as s3:  # fmt: skip
        results = []
        for spec in [None, "bytes=0-0", f"bytes={MIB - 1}-{MIB}", "bytes=-7", "bytes=6291000-"]:
            if spec is None:
                response = await s3.get_object(Bucket=bucket, Key="big")
            else:
                response = await s3.get_object(Bucket=bucket, Key="big", Range=spec)
            async with response["Body"] as stream:
                chunks = [chunk async for chunk in stream.iter_chunks(256 * 1024)]
            results.append(b"".join(chunks))
        with pytest.raises(ClientError) as refused:
            await s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={len(BIG)}-")
        assert refused.value.response["Error"]["Code"] == "InvalidRange"
        return results


def test_aiobotocore_reads_ranges_and_whole_objects(s3, endpoint):
    _, bucket = s3
    results = asyncio.run(aio_reads(endpoint, bucket))
    assert results == [BIG, BIG[:1], BIG[MIB - 1 : MIB + 1], BIG[-7:], BIG[6291000:]]


def receive_all(sqs, queue_url: str, want: set[str], timeout: float) -> dict[str, list[dict]]:
    """Object Created event details by key, waiting until every wanted key has one."""
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want <= found.keys():
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            event = json.loads(message["Body"])
            assert event["detail-type"] == "Object Created"
            found.setdefault(event["detail"]["object"]["key"], []).append(event["detail"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert want <= found.keys(), f"no Object Created event for {sorted(want - found.keys())}"
    return found


def test_put_and_multipart_uploads_still_send_object_created_events(endpoint):
    wired = resources.bootstrap(
        endpoint, REGION, bucket="events-bucket", jobs_table="events-jobs",
        event_bus="events-bus", prefix="events",
    )  # fmt: skip
    s3 = client(endpoint)
    s3.put_object(Bucket=wired.bucket, Key="input/put.csv", Body=SMALL)
    upload = s3.create_multipart_upload(Bucket=wired.bucket, Key="input/multi.csv")["UploadId"]
    parts = []
    for number, piece in enumerate([BIG[:PART], SMALL], 1):
        put = s3.upload_part(
            Bucket=wired.bucket,
            Key="input/multi.csv",
            UploadId=upload,
            PartNumber=number,
            Body=piece,
        )
        parts.append({"PartNumber": number, "ETag": put["ETag"]})
    etag = s3.complete_multipart_upload(
        Bucket=wired.bucket,
        Key="input/multi.csv",
        UploadId=upload,
        MultipartUpload={"Parts": parts},
    )["ETag"].strip('"')

    sqs = resources.client("sqs", endpoint, REGION)
    found = receive_all(sqs, wired.queue_urls["ingest"], {"input/put.csv", "input/multi.csv"}, 30)
    assert {(d["object"]["size"], d["object"]["eTag"]) for d in found["input/put.csv"]} == {
        (len(SMALL), hashlib.md5(SMALL).hexdigest())
    }
    assert {(d["object"]["size"], d["object"]["eTag"]) for d in found["input/multi.csv"]} == {
        (PART + len(SMALL), etag)
    }


def test_reset_still_wipes_everything(tmp_path_factory):
    service, url = start_moto(tmp_path_factory, "reset-moto")
    try:
        s3 = make_bucket(url, "before-reset", {"big": BIG})
        request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert s3.list_buckets()["Buckets"] == []
        s3 = make_bucket(url, "after-reset", {"big": BIG})
        assert ranged_get(s3, "after-reset", "big", "bytes=-3") == expected("bytes=-3", BIG)
    finally:
        service.stop()
