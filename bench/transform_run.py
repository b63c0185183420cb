"""The same rows as a SageMaker transform job: CreateTransformJob on the local stack.

Beside ``ByomStack.run_file`` (an upload to ``input/``), in the same stack and run:
the rows go under a prefix outside ``input/``, a model is created from the sample
booster as SageMaker's XGBoost training leaves it, and the clock runs from
CreateTransformJob to the job's Completed (DescribeTransformJob polled as a waiter
with a short delay polls it). The `.out` is checked like every other output.
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path
from typing import Any

from bench.byom_run import OUT_DIR, TIMEOUT, ByomStack, JobRun
from bench.procs import RssSampler
from bench.verify import check_output
from tests.integration.helpers import collect_done_events

MODEL_NAME = "bench-xgb"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
POLL_SECONDS = 0.2
PREFIX = "sagemaker-bench"


def _model_tar(model_file: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = model_file.read_bytes()
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ensure_model(bench: ByomStack, sagemaker: Any) -> None:
    names = [m["ModelName"] for m in sagemaker.list_models(NameContains=MODEL_NAME)["Models"]]
    if MODEL_NAME in names:
        return
    key = f"{PREFIX}/model/model.tar.gz"
    bench.s3.put_object(Bucket=bench.bucket, Key=key, Body=_model_tar(bench.model_file))
    sagemaker.create_model(
        ModelName=MODEL_NAME,
        PrimaryContainer={
            "Image": XGBOOST_IMAGE,
            "ModelDataUrl": f"s3://{bench.bucket}/{key}",
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
    )


def _request(name: str, source: str, output: str) -> dict[str, Any]:
    """What a user writes for a big CSV: Line splitting, full 6 MB requests, a line each.
    MaxConcurrentTransforms is left to the container's execution parameters."""
    return {
        "TransformJobName": name,
        "ModelName": MODEL_NAME,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": "text/csv", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    }


def _wait_completed(sagemaker: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        described: dict[str, Any] = sagemaker.describe_transform_job(TransformJobName=name)
        status = described["TransformJobStatus"]
        if status == "Completed":
            return described
        if status in ("Failed", "Stopped"):
            raise RuntimeError(f"transform job {name}: {status}: {described.get('FailureReason')}")
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"transform job {name} not done within {TIMEOUT:.0f} s")


def run_transform(bench: ByomStack, path: Path) -> JobRun:
    """``path``'s rows through CreateTransformJob, timed to Completed, `.out` checked."""
    sagemaker = bench.stack.client("sagemaker")
    _ensure_model(bench, sagemaker)
    bench.uploads += 1
    name = f"bench-{bench.uploads:03d}"
    key = f"{PREFIX}/{name}/in/{path.name}"
    bench.s3.upload_file(str(path), bench.bucket, key)
    source = f"s3://{bench.bucket}/{PREFIX}/{name}/in/"
    output = f"s3://{bench.bucket}/{PREFIX}/{name}/out"
    with RssSampler(bench.service_pids()) as sampler:
        started = time.perf_counter()
        sagemaker.create_transform_job(**_request(name, source, output))
        _wait_completed(sagemaker, name)
        seconds = time.perf_counter() - started
    detail = _object_done_event(bench, f"s3://{bench.bucket}/{key}")
    out_key = f"{PREFIX}/{name}/out/{path.name}.out"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    local = OUT_DIR / f"transform-{path.name}"
    bench.s3.download_file(bench.bucket, out_key, str(local))
    try:
        rows = check_output(bench.model_file, path, local)
    finally:
        local.unlink()
        for stale in (key, out_key):
            bench.s3.delete_object(Bucket=bench.bucket, Key=stale)
    return JobRun(seconds, rows, sampler.peaks, detail)


def _object_done_event(bench: ByomStack, uri: str) -> dict[str, Any]:
    """The object's byom job's done event (its chunk count), drained from the queue so
    the runs after this one do not see it; {} if it does not come."""
    try:
        return collect_done_events(bench.sqs, bench.done_queue, {uri}, timeout=60)[uri]
    except TimeoutError:
        return {}
