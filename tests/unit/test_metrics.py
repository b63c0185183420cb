from __future__ import annotations

import asyncio
import json

from shared import chunk_timer, metrics
from shared.schemas import ChunkDone, ChunkTimings


def test_metrics_are_emf_lines_and_nothing_when_empty(capsys):
    metrics.flush()  # whatever earlier tests in this process left behind
    capsys.readouterr()
    metrics.flush()
    assert capsys.readouterr().out == ""
    metrics.count("JobsSucceeded")
    metrics.count("RowsScored", 7)
    metrics.flush()
    blob = json.loads(capsys.readouterr().out)
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "byom"
    assert {m["Name"] for m in directive["Metrics"]} == {"JobsSucceeded", "RowsScored"}
    assert blob["RowsScored"] == [7.0] or blob["RowsScored"] == 7.0


def test_chunk_latency_endpoint_latency_and_retries(capsys):
    metrics.flush()
    capsys.readouterr()
    timings = ChunkTimings(seconds=1.5, endpoint_calls=4, endpoint_seconds=0.8, endpoint_retries=3)
    metrics.chunk_done(ChunkDone(job_id="j", chunk_index=0, attempt=2, rows=10, timings=timings))
    metrics.flush()
    blob = json.loads(capsys.readouterr().out)
    units = {m["Name"]: m["Unit"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {
        "WorkerRetries": "Count", "ChunkLatency": "Milliseconds", "EndpointCalls": "Count",
        "EndpointRetries": "Count", "EndpointLatency": "Milliseconds",
    }  # fmt: skip
    values = {name: blob[name] if isinstance(blob[name], list) else [blob[name]] for name in units}
    assert values["ChunkLatency"] == [1500.0] and values["EndpointLatency"] == [200.0]
    assert values["EndpointRetries"] == [3.0] and values["WorkerRetries"] == [1.0]


def test_failures_are_counted_by_cause(capsys):
    capsys.readouterr()
    metrics.failure("model")
    metrics.failure("something new")
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [blob["Cause"] for blob in blobs] == ["model", "other"]
    for blob in blobs:
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "byom" and ["Cause"] in directive["Dimensions"]
        assert blob[metrics.FAILURES] in (1.0, [1.0])


def test_each_chunk_task_times_its_own_endpoint_calls():
    async def chunk(calls: int) -> ChunkTimings | None:
        chunk_timer.start()

        async def call() -> None:  # a request task, as the worker fans them out
            chunk_timer.endpoint_call(0.01)

        await asyncio.gather(*(call() for _ in range(calls)))
        chunk_timer.endpoint_retry()
        return chunk_timer.timings()

    async def both() -> list[ChunkTimings | None]:
        return list(await asyncio.gather(chunk(2), chunk(5)))

    first, second = asyncio.run(both())
    assert first is not None and second is not None
    assert (first.endpoint_calls, second.endpoint_calls) == (2, 5)
    assert first.endpoint_retries == second.endpoint_retries == 1
    assert chunk_timer.timings() is None  # nothing leaked into the caller
