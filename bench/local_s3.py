"""What the local S3 costs on one big object: moto as it ships against infra/local/moto_server.

python -m bench.local_s3 --size-mb 269 [--repeats 3] [--ranges 15] [--upload put|multipart|both]

For each server and repetition (a fresh server each time): upload the object (one PUT
and/or a multipart upload of 8 MiB parts, as ``aws s3 cp`` does), GET it whole, GET 64 KiB
and 4 MiB ranges at random offsets, and read the server's peak RSS (VmHWM) after the
uploads and at the end. Prints the medians over the repetitions; the machine is shared, so
figures move by tens of percent between runs.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.stack import REPO

MIB = 1024 * 1024
BUCKET = "bench-local-s3"
SERVERS = {
    "moto": ["-m", "moto.server"],
    "patched": ["-m", "infra.local.moto_server"],
}
RANGES = {"range_64k": 64 * 1024, "range_4m": 4 * MIB}


def peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


@contextmanager
def server(kind: str, log_dir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    service = Service(
        name=kind,
        command=[sys.executable, *SERVERS[kind], "-H", "127.0.0.1", "-p", str(port)],
        env={"PATH": "/usr/bin:/bin"},
        log_path=log_dir / f"{kind}.log",
        cwd=REPO,
    )
    service.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: service.check_alive() and http_ok(f"{url}/moto-api/"), timeout=30, what=kind
        )
        yield url, service.pid
    finally:
        service.stop()


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def drain(body: Any) -> int:
    """Read a streaming body to the end, 1 MiB at a time, keeping none of it."""
    return sum(len(chunk) for chunk in body.iter_chunks(MIB))


def one_run(kind: str, data: bytes, args: argparse.Namespace, log_dir: Path) -> dict[str, float]:
    size = len(data)
    rng = random.Random(args.seed)
    figures: dict[str, float] = {}
    with server(kind, log_dir) as (url, pid):
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(read_timeout=600, retries={"total_max_attempts": 1}),
        )
        s3.create_bucket(Bucket=BUCKET)
        key = "put" if args.upload in ("put", "both") else "multi"  # the object GETs read
        if args.upload in ("put", "both"):
            figures["put_s"] = timed(lambda: s3.put_object(Bucket=BUCKET, Key="put", Body=data))
        if args.upload in ("multipart", "both"):
            transfer = TransferConfig(
                multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4
            )
            figures["multipart_s"] = timed(
                lambda: s3.upload_fileobj(io.BytesIO(data), BUCKET, "multi", Config=transfer)
            )
        figures["peak_rss_after_upload_mb"] = peak_rss(pid) / MIB

        def get_whole() -> None:
            assert drain(s3.get_object(Bucket=BUCKET, Key=key)["Body"]) == size

        figures["get_whole_s"] = timed(get_whole)
        for name, length in RANGES.items():
            times = []
            for _ in range(args.ranges):
                start = rng.randrange(0, size - length)
                spec = f"bytes={start}-{start + length - 1}"

                def get_range(spec: str = spec, length: int = length) -> None:
                    body = s3.get_object(Bucket=BUCKET, Key=key, Range=spec)["Body"]
                    assert drain(body) == length

                times.append(timed(get_range))
            figures[f"{name}_ms"] = statistics.median(times) * 1000
        figures["peak_rss_mb"] = peak_rss(pid) / MIB
    return figures


def object_bytes(size: int, seed: int) -> bytes:
    # 16 MiB of random bytes repeated: incompressible enough, and quick to make for 2 GB.
    block = random.Random(seed).randbytes(min(size, 16 * MIB))
    whole, rest = divmod(size, len(block))
    return b"".join([block] * whole + [block[:rest]])  # one allocation of `size` bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=269, help="object size, MB (10^6 B)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranges", type=int, default=15, help="ranged GETs per range size")
    parser.add_argument("--upload", choices=["put", "multipart", "both"], default="both")
    parser.add_argument("--servers", default="moto,patched", help="comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    data = object_bytes(int(args.size_mb * 1_000_000), args.seed)
    print(f"object: {len(data) / 1e6:.0f} MB; median of {args.repeats} runs", flush=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-local-s3-") as tmp:
        for kind in args.servers.split(","):
            runs = []
            for run in range(args.repeats):
                runs.append(one_run(kind, data, args, Path(tmp)))
                print(f"  {kind} run {run + 1}: {format_figures(runs[-1])}", flush=True)
            results[kind] = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    print()
    for kind, figures in results.items():
        print(f"{kind:>8}: {format_figures(figures)}")


def format_figures(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.3g}" for name, value in figures.items())


if __name__ == "__main__":
    main()
