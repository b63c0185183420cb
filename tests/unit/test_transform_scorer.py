"""The transform scorer sends raw records as SageMaker does, against a fake endpoint.

The fake S3 holds objects in memory and answers ranged GETs; the fake runtime
answers each CSV line with the sum of its cells (one line per record), refuses a
cell that is not a number naming its line and column as the model server does,
and can be told to hang.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from services.inference_worker import transform
from services.inference_worker.endpoint import Endpoint
from shared import naming
from shared.errors import InputError
from shared.plans import Chunk, ChunkPlan, TransformSource
from shared.settings import get_settings
from shared.transform import ObjectSettings

BUCKET, STAGING = "users-data", "byom-local"


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self) -> bytes:
        return self.data

    async def iter_chunks(self, size: int) -> Any:
        for start in range(0, len(self.data), size):
            yield self.data[start : start + size]


class FakeS3:
    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = dict(objects)

    async def get_object(self, *, Bucket: str, Key: str, Range: str | None = None, **_: Any) -> Any:
        data = self.objects[(Bucket, Key)]
        if Range is not None:
            start, end = (int(x) for x in Range.removeprefix("bytes=").split("-"))
            data = data[start : end + 1]
        return {"Body": Body(data)}

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> Any:
        self.objects[(Bucket, Key)] = Body
        return {}


class FakeRuntime:
    """Answers a CSV body with each line's sum; JSON bodies with {"score": n}."""

    def __init__(self, hang: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.in_flight = self.most_in_flight = 0
        self.hang = hang

    async def invoke_endpoint(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other requests start
            if self.hang:
                await asyncio.Event().wait()
            return {"Body": Body(self.answer(call["Body"]))}
        finally:
            self.in_flight -= 1

    def answer(self, body: bytes) -> bytes:
        if body.lstrip().startswith((b"{", b"[")):
            lines = [json.loads(line) for line in body.decode().splitlines()]
            return b"\n".join(json.dumps({"score": len(str(v))}).encode() for v in lines) + b"\n"
        out = []
        for number, line in enumerate(body.decode().splitlines(), 1):
            for column, cell in enumerate(line.split(","), 1):
                if not re.fullmatch(r"-?\d+(\.\d+)?", cell):
                    raise ClientError(
                        cast(
                            Any,
                            {
                                "Error": {
                                    "Code": "ValidationError",
                                    "Message": f"line {number}, column {column}: {cell!r} is not "
                                    "a number",
                                },
                                "ResponseMetadata": {"HTTPStatusCode": 400},
                            },
                        ),
                        "InvokeEndpoint",
                    )
            out.append(str(sum(float(c) for c in line.split(","))))
        return "\n".join(out).encode() + b"\n"


def plan_for(data: bytes, chunk_bytes: int | None = None, **settings: Any) -> ChunkPlan:
    size = len(data)
    step = chunk_bytes or size
    chunks = tuple(
        Chunk(index=i, start=s, end=min(s + step, size)) for i, s in enumerate(range(0, size, step))
    )
    return ChunkPlan(
        job_id="tjob",
        bucket=BUCKET,
        key="in/data.csv",
        etag="e",
        size=size,
        chunks=chunks,
        staging_bucket=STAGING,
        source=TransformSource(
            settings=ObjectSettings(**settings),
            target_model="m/1/model.tar.gz",
            input_bucket=BUCKET,
            input_key="in/data.csv",
            output_bucket="out",
            output_key="o/data.csv.out",
            transform_job_name="tj",
            transform_index=0,
            inference_time="2026-12-06T10:00:00Z",
        ),
    )


def score(data: bytes, runtime: FakeRuntime | None = None, **settings: Any) -> bytes:
    """Every chunk's output, concatenated in order (as status assembles them)."""
    runtime = runtime or FakeRuntime()
    plan = plan_for(data, **settings)
    s3 = FakeS3({(BUCKET, "in/data.csv"): data})
    base = Endpoint(
        cast(Any, runtime), "byom-model", concurrency=8, attempts=1, backoff=0, backoff_max=0
    )

    async def run() -> None:
        for chunk in plan.chunks:
            await transform.score_transform(
                cast(Any, s3), base, plan, chunk, uri="ignored", output_key="ignored",
                settings=get_settings(),
            )  # fmt: skip

    asyncio.run(run())
    transform._ENDPOINTS.clear()
    return b"".join(
        s3.objects[(STAGING, naming.chunk_output_key("tjob", c.index))] for c in plan.chunks
    )


CSV = b"1,2,3\n4,5,6\n7,8,9\n"


def test_single_record_sends_a_request_per_line_with_the_given_headers():
    runtime = FakeRuntime()
    out = score(
        CSV, runtime, split_type="Line", batch_strategy="SingleRecord", assemble_with="Line",
        content_type="text/csv", accept="text/csv",
    )  # fmt: skip
    assert out == b"6.0\n15.0\n24.0\n"
    assert [c["Body"] for c in runtime.calls] == [b"1,2,3", b"4,5,6", b"7,8,9"]
    call = runtime.calls[0]
    assert (call["ContentType"], call["Accept"], call["TargetModel"]) == (
        "text/csv",
        "text/csv",
        "m/1/model.tar.gz",
    )


def test_a_content_type_or_accept_left_unset_is_not_sent():
    runtime = FakeRuntime()
    score(CSV, runtime, split_type="Line", assemble_with="Line")
    assert "ContentType" not in runtime.calls[0] and "Accept" not in runtime.calls[0]


def test_multi_record_packs_whole_records_up_to_the_payload():
    runtime = FakeRuntime()
    out = score(
        CSV, runtime, split_type="Line", batch_strategy="MultiRecord", max_payload_bytes=12,
        assemble_with="Line",
    )  # fmt: skip
    assert [c["Body"] for c in runtime.calls] == [b"1,2,3\n4,5,6\n", b"7,8,9"]
    assert out == b"6.0\n15.0\n24.0\n"


def test_assemble_with_none_keeps_the_answers_bytes_as_they_are():
    class Bare(FakeRuntime):
        def answer(self, body: bytes) -> bytes:
            return super().answer(body).rstrip(b"\n")

    out = score(CSV, Bare(), split_type="Line", batch_strategy="SingleRecord")
    assert out == b"6.015.024.0"


def test_a_record_larger_than_the_payload_fails_naming_its_line():
    data = b"1,2\n" + b"1," * 20 + b"1\n3,4\n"
    with pytest.raises(InputError) as caught:
        score(data, split_type="Line", batch_strategy="MultiRecord", max_payload_bytes=16)
    assert caught.value.line == 2
    assert caught.value.uri == "s3://users-data/in/data.csv"
    assert "MaxPayloadInMB" in caught.value.reason


def test_line_numbers_count_across_chunks_of_one_object():
    data = b"".join(b"%d,1\n" % i for i in range(1, 40)) + b"x,1\n" + b"2,2\n"
    with pytest.raises(InputError) as caught:
        score(data, chunk_bytes=50, split_type="Line", batch_strategy="MultiRecord")
    assert (caught.value.line, caught.value.column) == (40, 1)
    assert "'x' is not a number" in caught.value.reason


def test_the_model_s_column_is_mapped_back_through_the_input_filter():
    data = b"id1,1,2\nid2,3,y\n"
    with pytest.raises(InputError) as caught:
        score(data, split_type="Line", batch_strategy="MultiRecord", input_filter="$[1:]")
    assert (caught.value.line, caught.value.column) == (2, 3)


def test_csv_join_appends_to_the_line_as_uploaded_then_the_output_filter():
    data = b"id1,1,2\nid2,3,4\n"
    joined = score(
        data, split_type="Line", batch_strategy="MultiRecord", input_filter="$[1:]",
        join_source="Input", assemble_with="Line",
    )  # fmt: skip
    assert joined == b"id1,1,2,3.0\nid2,3,4,7.0\n"
    kept = score(
        data, split_type="Line", batch_strategy="MultiRecord", input_filter="$[1:]",
        join_source="Input", output_filter="$[0,-1]", assemble_with="Line",
    )  # fmt: skip
    assert kept == b"id1,3.0\nid2,7.0\n"


def test_the_slice_end_is_exclusive():
    runtime = FakeRuntime()
    score(b"1,2,3,4,5\n", runtime, split_type="Line", input_filter="$[1:4]")
    assert runtime.calls[0]["Body"] == b"2,3,4"


def test_json_lines_join_puts_the_answer_under_sagemaker_output():
    data = b'{"id": 1, "f": [1, 2]}\n[5, 6]\n'
    out = score(
        data, split_type="Line", batch_strategy="MultiRecord", join_source="Input",
        content_type="application/jsonlines", accept="application/jsonlines",
        assemble_with="Line",
    )  # fmt: skip
    first, second = (json.loads(line) for line in out.splitlines())
    size = len(str({"id": 1, "f": [1, 2]}))  # the fake's answer: the record's length
    assert first == {"id": 1, "f": [1, 2], "SageMakerOutput": {"score": size}}
    assert second == {"SageMakerInput": [5, 6], "SageMakerOutput": {"score": 6}}


def test_a_json_input_filter_and_output_filter_by_name():
    runtime = FakeRuntime()
    data = b'{"id": 7, "features": [1, 2]}\n'
    out = score(
        data, runtime, split_type="Line", join_source="Input", input_filter="$.features",
        output_filter="$['id','SageMakerOutput']", content_type="application/jsonlines",
        assemble_with="Line",
    )  # fmt: skip
    assert runtime.calls[0]["Body"] == b"[1,2]"
    assert json.loads(out) == {"id": 7, "SageMakerOutput": {"score": len(str([1, 2]))}}


def test_split_type_none_whole_file_json_join():
    class Whole(FakeRuntime):
        def answer(self, body: bytes) -> bytes:
            return b'{"predictions": [0.1, 0.2]}'

    data = b'{"instances": [[1, 2], [3, 4]]}'
    out = score(data, Whole(), split_type="None", join_source="Input",
                content_type="application/json")  # fmt: skip
    assert json.loads(out) == {
        "instances": [[1, 2], [3, 4]],
        "SageMakerOutput": {"predictions": [0.1, 0.2]},
    }


def test_an_output_filter_alone_applies_to_a_whole_json_answer():
    class Frame(FakeRuntime):
        def answer(self, body: bytes) -> bytes:
            return b'{"class": {"0": "a", "1": "b"}, "p": {"0": 1, "1": 2}}'

    out = score(
        CSV, Frame(), split_type="Line", batch_strategy="MultiRecord", accept="application/json",
        output_filter="$['class']", assemble_with="Line",
    )  # fmt: skip
    assert json.loads(out) == {"0": "a", "1": "b"}


def test_generate_inference_id_adds_an_id_and_the_time():
    csv_out = score(
        b"1,2\n3,4\n", split_type="Line", generate_inference_id=True, assemble_with="Line",
        content_type="text/csv",
    )  # fmt: skip
    lines = [line.split(b",") for line in csv_out.splitlines()]
    assert [line[0] for line in lines] == [b"3.0", b"7.0"]
    assert all(line[2] == b"2026-12-06T10:00:00Z" for line in lines)
    assert lines[0][1] != lines[1][1] and len(lines[0][1]) == 36
    json_out = score(
        b'{"a": 1}\n', split_type="Line", generate_inference_id=True, assemble_with="Line",
        content_type="application/jsonlines",
    )  # fmt: skip
    record = json.loads(json_out)
    assert record["score"] == len(str({"a": 1}))  # an object answer takes the two keys
    assert record["SageMakerInferenceTime"] == "2026-12-06T10:00:00Z"
    assert len(record["SageMakerInferenceId"]) == 36


def test_at_most_max_concurrent_requests_are_in_flight():
    runtime = FakeRuntime()
    data = b"".join(b"%d\n" % i for i in range(40))
    score(data, runtime, split_type="Line", max_concurrent=3)
    assert len(runtime.calls) == 40
    assert runtime.most_in_flight == 3


def test_an_invocation_past_its_timeout_is_retried_then_fails_the_object(monkeypatch):
    runtime = FakeRuntime(hang=True)
    # ObjectSettings holds whole seconds; the scorer's endpoint takes a shorter one here.
    real = transform.transform_endpoint

    def quick(base: Endpoint, plan: ChunkPlan, settings: Any) -> Endpoint:
        endpoint = real(base, plan, settings)
        endpoint.timeout = 0.05
        return endpoint

    monkeypatch.setattr(transform, "transform_endpoint", quick)
    with pytest.raises(InputError) as caught:
        score(b"1,2\n3,4\n", runtime, split_type="Line", batch_strategy="MultiRecord",
              invocations_max_retries=2)  # fmt: skip
    assert len(runtime.calls) == 3  # the first try and two retries
    assert caught.value.line == 1
    assert "no answer within 0.05 s" in caught.value.reason
    assert "InvocationsMaxRetries 2" in caught.value.reason
