"""The model server's prediction pool: threads in one process against processes.

    python -m bench.server_threads [--rows 500000]

Sends the same float32 ``.npy`` requests (512 KiB each, 8 in flight, as a worker
child does) to one server with 1, 2 and 4 prediction threads, and to two
single-thread servers sharing the load, and prints rows/s for each.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import numpy as np

from infra.local.processes import free_port, http_ok, wait_until

REPO = Path(__file__).resolve().parents[1]
REQUEST_BYTES = 512 * 1024
IN_FLIGHT = 8


def bodies(rows: int) -> list[bytes]:
    values = np.random.default_rng(7).random((rows, 30), dtype=np.float32)
    per_request = (REQUEST_BYTES - 256) // (30 * 4)
    out = []
    for start in range(0, rows, per_request):
        buffer = io.BytesIO()
        np.save(buffer, values[start : start + per_request], allow_pickle=False)
        out.append(buffer.getvalue())
    return out


def start_server(stack: ExitStack, threads: int, model_dir: Path) -> str:
    port = free_port()
    env = dict(os.environ, BYOM_MODEL_SERVER_THREADS=str(threads), PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "model.server", "--port", str(port), "--model-dir", str(model_dir)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(process.wait)
    stack.callback(process.terminate)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/ping"), timeout=30, what="model server")
    return url


async def send(urls: list[str], requests: list[bytes]) -> float:
    slots = asyncio.Semaphore(IN_FLIGHT)
    headers = {"Content-Type": "application/x-npy", "Accept": "text/csv"}
    async with aiohttp.ClientSession() as session:

        async def one(index: int, body: bytes) -> None:
            async with slots:
                url = f"{urls[index % len(urls)]}/invocations"
                async with session.post(url, data=body, headers=headers) as response:
                    response.raise_for_status()
                    await response.read()

        await asyncio.gather(*(one(i, b) for i, b in enumerate(requests[:20])))  # warm up
        started = time.perf_counter()
        await asyncio.gather(*(one(i, b) for i, b in enumerate(requests)))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--model-dir", type=Path, default=REPO / "model" / "artifacts")
    args = parser.parse_args()
    requests = bodies(args.rows)
    layouts = [("1 process x 1 thread", [1]), ("1 process x 2 threads", [2])]
    layouts += [("1 process x 4 threads", [4]), ("2 processes x 1 thread", [1, 1])]
    for name, threads in layouts:
        with ExitStack() as stack:
            urls = [start_server(stack, count, args.model_dir) for count in threads]
            best = min(asyncio.run(send(urls, requests)) for _ in range(3))
        print(f"{name:24} {args.rows / best:>12,.0f} rows/s (best of 3: {best:.2f} s)")


if __name__ == "__main__":
    main()
