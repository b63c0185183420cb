"""byom end to end on the local stack, driven the way a user drives it.

Upload with boto3's managed transfer, start the clock when the upload has
finished, stop it at the done event, then read the output back and check it.
Only the stack's interfaces are used (S3 input/, the done-event bus, output/),
so the figures stay comparable while the pipeline behind them changes.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.calls import Recorder, count_calls
from bench.data import BENCH_DIR
from bench.procs import Peaks, RssSampler
from bench.verify import check_output
from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.helpers import collect_done_events

OUT_DIR = BENCH_DIR / "out"
TIMEOUT = 3600.0


@dataclass
class JobRun:
    seconds: float  # upload finished -> done event
    rows: int
    peaks: Peaks
    detail: dict[str, Any]


class ByomStack:
    """A local stack with a done-event queue, for one group of runs."""

    def __init__(self, model_dir: Path, name: str, settings: dict[str, str] | None = None,
                 batch_parallel: int | None = None) -> None:  # fmt: skip
        self.log_dir = BENCH_DIR / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        config = StackConfig(model_dir=model_dir, log_dir=self.log_dir, settings=settings or {})
        if batch_parallel is not None:
            config.batch_parallel = batch_parallel
        self.stack = LocalStack(config)
        self.model_file = model_dir / "xgboost-model.json"
        self.uploads = 0

    def __enter__(self) -> ByomStack:
        # moto reads this at start-up; only the benchmark switches recording on.
        self.recording = self.log_dir / "moto-recording.jsonl"
        os.environ["MOTO_RECORDER_FILEPATH"] = str(self.recording)
        started = time.monotonic()
        self.stack.start()
        self.start_seconds = time.monotonic() - started
        self.bucket = self.stack.config.bucket
        self.done_queue = self.stack.subscribe_done_events("bench-done-events")
        self.s3, self.sqs = self.stack.client("s3"), self.stack.client("sqs")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()

    def service_pids(self) -> dict[str, int]:
        return {name: service.pid for name, service in self.stack.services.items()}

    def _key(self, path: Path) -> str:
        # A fresh key per upload: the same bytes under the same key are one job.
        self.uploads += 1
        return f"input/{self.uploads:03d}-{path.name}"

    def upload(self, path: Path) -> str:
        key = self._key(path)
        self.s3.upload_file(str(path), self.bucket, key)
        return f"s3://{self.bucket}/{key}"

    def wait(self, uris: set[str]) -> dict[str, dict[str, Any]]:
        try:
            details = collect_done_events(self.sqs, self.done_queue, uris, timeout=TIMEOUT)
        except TimeoutError:
            print(self.stack.logs())
            raise
        failed = {uri: d for uri, d in details.items() if d["status"] != "SUCCEEDED"}
        if failed:
            raise RuntimeError(f"jobs did not succeed: {failed}")
        return details

    def run_file(self, path: Path, *, verify: bool = True) -> JobRun:
        """One upload, timed from upload finished to done event, output checked."""
        with RssSampler(self.service_pids()) as sampler:
            uri = self.upload(path)
            uploaded = time.perf_counter()
            detail = self.wait({uri})[uri]
            seconds = time.perf_counter() - uploaded
        rows = int(detail["rows"])
        if verify:
            rows = self.check(path, detail)
        return JobRun(seconds, rows, sampler.peaks, detail)

    def check(self, path: Path, detail: dict[str, Any]) -> int:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        local = OUT_DIR / f"byom-{path.name}"
        key = detail["output_uri"].removeprefix(f"s3://{self.bucket}/")
        self.s3.download_file(self.bucket, key, str(local))
        try:
            return check_output(self.model_file, path, local)
        finally:
            local.unlink()
            self.forget(detail)

    def forget(self, detail: dict[str, Any]) -> None:
        """Delete a finished job's objects, so the local S3 does not grow run over run."""
        for uri in (detail["input_uri"], detail.get("output_uri")):
            if uri:
                key = uri.removeprefix(f"s3://{self.bucket}/")
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def median_latency(self, path: Path, uploads: int) -> float:
        """Median upload-finished -> done event over ``uploads`` uploads, one at a time."""
        times = []
        for _ in range(uploads):
            uri = self.upload(path)
            uploaded = time.perf_counter()
            self.forget(self.wait({uri})[uri])
            times.append(time.perf_counter() - uploaded)
        return statistics.median(times)

    def burst(self, paths: list[Path]) -> tuple[float, int]:
        """Every file uploaded at once (one thread each); seconds until every done event.

        The clock starts when the last upload has finished.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            uris = set(pool.map(self.upload, paths))
        uploaded = time.perf_counter()
        details = self.wait(uris)
        seconds = time.perf_counter() - uploaded
        for detail in details.values():
            self.forget(detail)
        return seconds, sum(int(d["rows"]) for d in details.values())

    def job_calls(self, path: Path) -> tuple[Counter[tuple[str, str]], int, bool]:
        """Calls from the upload to the done event by (service, operation), the upload's
        own left out; the job's chunk count; whether moto serves S3 (else S3 is unseen)."""
        recorder = Recorder(self.stack.endpoint_url, self.recording)
        recorder.start()
        uri = self.upload(path)
        detail = self.wait({uri})[uri]
        recording = recorder.stop()
        self.forget(detail)
        s3_on_moto = "AWS_ENDPOINT_URL_S3" not in self.stack.base_env()
        queue_name = self.done_queue.rsplit("/", 1)[-1]
        key = uri.split("/", 3)[3]
        counts = count_calls(recording, ignore_queue=queue_name, ignore_upload_of=key)
        return counts, int(detail["chunks"]), s3_on_moto
