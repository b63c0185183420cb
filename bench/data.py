"""Benchmark inputs: feature-only CSVs from the training data's generator, made once.

Rows are written with ``%.6g`` (what a user's export typically looks like, ~269
bytes a row) in blocks, so that the 2 GB file never sits in memory whole.
Files are cached under ``.bench/data/`` and written to a temporary name first,
so an interrupted run never leaves a short file behind.
"""

from __future__ import annotations

import random
from pathlib import Path

from model.data import FEATURES, generate

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / ".bench"
DATA_DIR = BENCH_DIR / "data"
SAMPLE = REPO / "model" / "sample" / "sample.csv"

# ~2.0 GB at %.6g: the memory run.
BIG_ROWS = 7_500_000
BLOCK_ROWS = 250_000
SMALL_FILES = 60
SMALL_ROWS = (200, 2_000)


def write_rows(path: Path, rows: int, seed: int) -> None:
    """``rows`` generated feature rows, no header, no label, at ``path``."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="") as out:
        for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
            count = min(BLOCK_ROWS, rows - start)
            frame = generate(count, seed=seed * 1_000 + block).loc[:, list(FEATURES)]
            frame.to_csv(out, header=False, index=False, float_format="%.6g", lineterminator="\n")
    partial.replace(path)


def rows_file(rows: int, seed: int = 1) -> Path:
    path = DATA_DIR / f"rows-{rows}.csv"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"  writing {path.relative_to(REPO)} ({rows:,} rows) ...", flush=True)
        write_rows(path, rows, seed)
    return path


def small_files() -> list[Path]:
    """``SMALL_FILES`` files of 200-2,000 rows each (sizes fixed by a seed)."""
    folder = DATA_DIR / "small"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = random.Random(60).choices(range(SMALL_ROWS[0], SMALL_ROWS[1] + 1), k=SMALL_FILES)
    paths = []
    for index, rows in enumerate(sizes):
        path = folder / f"small-{index:02d}-{rows}.csv"
        if not path.exists():
            write_rows(path, rows, seed=100 + index)
        paths.append(path)
    return paths


def count_lines(path: Path) -> int:
    with path.open("rb") as source:
        return sum(block.count(b"\n") for block in iter(lambda: source.read(1 << 24), b""))
