"""200 files at once, mixed sizes, some bad: all end, none lost, none doubled.

Done events are delivered at least once (README), so a file may be announced
more than once; what may not happen is a second job for it, or two announcements
that disagree.

Prints the figures at the end (run with -s to see them):
files, rows, seconds, and failures by cause.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from model.data import generate
from tests.features import write_feature_csv
from tests.integration.helpers import keys_under

pytestmark = pytest.mark.integration

FILES = 200
BOUND_SECONDS = 600


def make_files(seed: int = 41) -> dict[str, tuple[bytes, int, str | None]]:
    """key -> (body, data rows, expected failure cause or None)."""
    rng = random.Random(seed)
    buffer = io.StringIO()
    write_feature_csv(generate(20_000, seed=seed), buffer)
    lines = buffer.getvalue().encode().splitlines(keepends=True)
    files: dict[str, tuple[bytes, int, str | None]] = {}
    for i in range(FILES):
        rows = rng.choice([rng.randint(1, 200), rng.randint(200, 3000), rng.randint(3000, 12_000)])
        start = rng.randint(0, len(lines) - rows)
        chosen = lines[start : start + rows]
        cause = None
        if i % 20 == 7:  # 10 bad files, three kinds of bad
            cause = ("not a number", "expected 30 columns", "empty line")[i % 3]
            at = rng.randrange(rows)
            if cause == "not a number":
                cells = chosen[at].split(b",")
                cells[rng.randrange(len(cells) - 1)] = b"oops"
                chosen[at] = b",".join(cells)
            elif cause == "expected 30 columns":
                chosen[at] = chosen[at].rstrip(b"\n") + b",1.0\n"
            else:
                chosen[at] = b"\n"
        files[f"input/load/file-{i:03d}.csv"] = (b"".join(chosen), rows, cause)
    return files


# What every announcement of one job must repeat exactly.
OUTCOME = ("job_id", "status", "output_uri", "rows", "error")


def one_outcome_per_file(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The done event of each input URI; raises if a file got two jobs or two outcomes."""
    by_uri: dict[str, dict[str, Any]] = {}
    for event in events:
        first = by_uri.setdefault(event["input_uri"], event)
        different = {k: (first.get(k), event.get(k)) for k in OUTCOME}
        different = {k: pair for k, pair in different.items() if pair[0] != pair[1]}
        assert not different, f"{event['input_uri']} announced twice, differently: {different}"
    return by_uri


def test_duplicate_announcements_must_agree():
    event = {
        "job_id": "j",
        "status": "SUCCEEDED",
        "output_uri": "s3://b/output/x.csv",
        "rows": 7,
        "error": None,
        "input_uri": "s3://b/input/x.csv",
        "duration_seconds": 1.0,
    }
    assert one_outcome_per_file([event, event | {"duration_seconds": 2.0}]) == {
        "s3://b/input/x.csv": event
    }
    with pytest.raises(AssertionError, match="differently"):
        one_outcome_per_file([event, event | {"job_id": "k"}])
    with pytest.raises(AssertionError, match="differently"):
        one_outcome_per_file([event, event | {"status": "FAILED", "error": "boom"}])


def test_two_hundred_files_at_once(model_dir, tmp_path):
    files = make_files()
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path / "logs",
        batch_parallel=4,
        settings={"BYOM_CHUNK_BYTES": str(1024 * 1024)},
    )
    with LocalStack(config) as stack:
        s3, sqs = stack.client("s3"), stack.client("sqs")
        done_queue = stack.subscribe_done_events("load-done-events")
        bucket = stack.config.bucket
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1][0]),
                    files.items(),
                )
            )
        events: list[dict] = []
        seen: set[str] = set()
        expected = {f"s3://{bucket}/{key}" for key in files}
        while time.monotonic() - started < BOUND_SECONDS and not expected <= seen:
            for message in sqs.receive_message(
                QueueUrl=done_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", []):
                detail = json.loads(message["Body"])["detail"]
                events.append(detail)
                seen.add(detail["input_uri"])
                sqs.delete_message(QueueUrl=done_queue, ReceiptHandle=message["ReceiptHandle"])
        elapsed = time.monotonic() - started

        missing = expected - seen
        if missing:
            print(stack.logs(30))
        assert not missing, f"{len(missing)} files never finished within {BOUND_SECONDS} s"
        # At least one announcement per file (the loop above waited for that); any
        # repeat must be of the same job with the same outcome.
        by_uri = one_outcome_per_file(events)
        assert set(by_uri) == expected
        assert len({e["job_id"] for e in events}) == FILES, "a file made two jobs"
        repeats = len(events) - FILES
        causes: Counter[str] = Counter()
        rows = 0
        for key, (_, count, cause) in files.items():
            detail = by_uri[f"s3://{bucket}/{key}"]
            if cause is None:
                assert detail["status"] == "SUCCEEDED", detail
                assert detail["rows"] == count
                rows += count
            else:
                assert detail["status"] == "FAILED", detail
                assert cause in detail["error"] and ", line " in detail["error"], detail
                causes[cause] += 1
        outputs = keys_under(s3, bucket, "output/")
        assert len(outputs) == sum(1 for f in files.values() if f[2] is None)

        items = stack.client("dynamodb").scan(TableName=stack.config.jobs_table)["Items"]
        items = [item for item in items if "input_key" in item]  # jobs, not name claims
        assert len(items) == FILES
        assert {i["state"]["S"] for i in items} <= {"SUCCEEDED", "FAILED"}

    print(
        f"\nload: {FILES} files, {rows} rows scored, {elapsed:.1f} s to the last done event "
        f"({rows / elapsed:,.0f} rows/s); failures by cause: {dict(causes)}; "
        f"repeated done events: {repeats}"
    )
