"""The single-machine peers: the in-process limit, the naive pandas script, and the
original solution's pattern (one script, one endpoint call at a time).

Each peer runs as its own process (``python -m bench.peers KIND IN OUT``) so that
its memory is its own; it times only its work (imports and interpreter start-up
excluded, as byom's clock excludes the upload) and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Peaks, RssSampler
from infra.local.processes import Service, free_port, http_ok, wait_until

REPO = Path(__file__).resolve().parents[1]
ENDPOINT_NAME = "byom-model"
# The original pattern's mini-batch: byom's own request size, so the two send the
# same requests and differ only in how many are in flight.
MINI_BATCH_BYTES = 512 * 1024


@dataclass
class PeerResult:
    seconds: float
    rows: int
    peaks: Peaks


def _booster(model_file: Path):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(model_file))
    return booster


def limit(source: Path, target: Path, model_file: Path) -> int:
    """pyarrow's multi-threaded CSV reader as float32, inplace_predict, pyarrow's writer."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import csv

    booster = _booster(model_file)
    types = {f"f{i}": pa.float32() for i in range(booster.num_features())}
    reader = csv.open_csv(
        source,
        read_options=csv.ReadOptions(autogenerate_column_names=True, block_size=16 << 20),
        convert_options=csv.ConvertOptions(column_types=types),
    )
    rows = 0
    schema = pa.schema([("p", pa.float32())])
    with csv.CSVWriter(target, schema, write_options=csv.WriteOptions(include_header=False)) as out:
        for batch in reader:
            features = np.column_stack([column.to_numpy() for column in batch.columns])
            scores = booster.inplace_predict(features, validate_features=False)
            out.write_batch(pa.record_batch([pa.array(scores, pa.float32())], schema=schema))
            rows += batch.num_rows
    return rows


def naive_pandas(source: Path, target: Path, model_file: Path) -> int:
    """What a user writes first: read_csv -> DMatrix -> predict -> to_csv."""
    import pandas as pd
    import xgboost

    from model.data import FEATURES

    booster = _booster(model_file)
    frame = pd.read_csv(source, header=None, names=list(FEATURES))
    scores = booster.predict(xgboost.DMatrix(frame))
    pd.Series(scores).to_csv(target, header=False, index=False)
    return len(frame)


def _mini_batches(source: Path) -> Iterator[bytes]:
    with source.open("rb") as lines:
        batch: list[bytes] = []
        size = 0
        for line in lines:
            if batch and size + len(line) > MINI_BATCH_BYTES:
                yield b"".join(batch)
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        if batch:
            yield b"".join(batch)


def original_pattern(source: Path, target: Path, model_file: Path) -> int:
    """One boto3 invoke_endpoint (text/csv) per mini-batch, strictly one after another."""
    import boto3

    del model_file  # the endpoint holds the model
    runtime = boto3.client("sagemaker-runtime")
    rows = 0
    with target.open("wb") as out:
        for body in _mini_batches(source):
            answer = runtime.invoke_endpoint(
                EndpointName=ENDPOINT_NAME, ContentType="text/csv", Body=body
            )
            out.write(answer["Body"].read())
            rows += body.count(b"\n")
    return rows


KINDS = {"limit": limit, "pandas": naive_pandas, "original": original_pattern}


def run_peer(
    kind: str,
    source: Path,
    target: Path,
    model_file: Path,
    *,
    env: dict[str, str] | None = None,
    also_sample: dict[str, int] | None = None,
) -> PeerResult:
    """Run one peer in its own process, sampling it (and ``also_sample``) for memory."""
    command = [sys.executable, "-m", "bench.peers", kind, str(source), str(target), str(model_file)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    with RssSampler({kind: process.pid, **(also_sample or {})}) as sampler:
        stdout, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{kind} peer exited with {process.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return PeerResult(report["seconds"], report["rows"], sampler.peaks)


def run_original(source: Path, target: Path, model_dir: Path, log_dir: Path) -> PeerResult:
    """The original pattern against byom's model server, started here on a free port."""
    port = free_port()
    server = Service(
        name="model-server",
        command=[
            sys.executable, "-m", "model.server",
            "--host", "127.0.0.1", "--port", str(port), "--model-dir", str(model_dir),
        ],
        env=dict(os.environ),
        log_path=log_dir / "original-model-server.log",
        cwd=REPO,
    )  # fmt: skip
    server.start()
    try:
        url = f"http://127.0.0.1:{port}/ping"
        wait_until(lambda: http_ok(url), timeout=60, what="model server")
        env = dict(os.environ) | {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{port}",
        }
        model_file = model_dir / "xgboost-model.json"
        server_pid = {"model server": server.pid}
        return run_peer("original", source, target, model_file, env=env, also_sample=server_pid)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("model_file", type=Path)
    args = parser.parse_args()
    # Imports happen before the clock starts: a user's script pays them once.
    import boto3  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import xgboost  # noqa: F401

    started = time.perf_counter()
    rows = KINDS[args.kind](args.source, args.target, args.model_file)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
