"""``make bench``: byom against its peers on the same files and the same model.

    python -m bench [--sizes 1000,100000,1000000] [--skip-2gb] [--ray | --no-ray]

Prints the machine, a table (seconds, rows/s, peak RSS of every process, each
against the in-process limit) and the figures for scaling (small-file latency,
a burst of small files, AWS calls per chunk, one child's throughput, memory on
a 2 GB file); writes the same as markdown to ``.bench/results.md``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bench import data, peers, report
from bench.byom_run import ByomStack, JobRun
from bench.ray_peer import RayUnavailable, run_ray
from bench.report import LIMIT, Row
from bench.transform_run import run_transform
from bench.verify import check_output

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (1_000, 100_000, 1_000_000)
SAMPLE_UPLOADS = 20
CALLS_ROWS = 100_000
BEST_OF = 3  # runs of the limit and of pandas; the best is kept


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part.replace("_", "")) for part in text.split(",") if part],
        default=list(DEFAULT_SIZES),
        help="row counts of the table's files (default 1000,100000,1000000)",
    )
    parser.add_argument("--skip-2gb", action="store_true", help="leave out the ~2 GB memory run")
    ray = parser.add_mutually_exclusive_group()
    ray.add_argument("--ray", action="store_true", help="install Ray in .bench/ray-venv if needed")
    ray.add_argument("--no-ray", action="store_true", help="leave Ray out")
    parser.add_argument("--model-dir", type=Path, default=REPO / "model" / "artifacts")
    return parser.parse_args(argv)


def peak_row(name: str, rows: int, seconds: float | None, peaks, note: str = "") -> Row:
    return Row(
        name,
        rows,
        seconds,
        peaks.total_rss,
        report.roles_line(peaks.by_role(), top=4),
        note,
        report.roles_line(peaks.by_role()),
    )


def byom_row(run: JobRun, note: str = "") -> Row:
    chunks = f"{run.detail.get('chunks')} chunk(s)"
    notes = "; ".join(part for part in (chunks, note) if part)
    return peak_row("byom (local stack)", run.rows, run.seconds, run.peaks, notes)


def transform_row(run: JobRun) -> Row:
    chunks = f"{run.detail.get('chunks', '?')} chunk(s)"
    note = f"CreateTransformJob -> Completed; {chunks}; MultiRecord, 6 MB requests"
    return peak_row("byom transform job (local stack)", run.rows, run.seconds, run.peaks, note)


def single_machine_rows(path: Path, rows: int, args: argparse.Namespace) -> list[Row]:
    """The limit, pandas, the original pattern and Ray on one file, outputs checked."""
    model_file = args.model_dir / "xgboost-model.json"
    out = data.BENCH_DIR / "out"
    out.mkdir(parents=True, exist_ok=True)
    log_dir = data.BENCH_DIR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[str, Callable[[Path], peers.PeerResult]]] = [
        (LIMIT, lambda target: peers.run_peer("limit", path, target, model_file)),
        ("naive pandas", lambda target: peers.run_peer("pandas", path, target, model_file)),
        (
            "original pattern (sequential invoke_endpoint)",
            lambda target: peers.run_original(path, target, args.model_dir, log_dir),
        ),
    ]
    table: list[Row] = []
    for name, run in runs:
        target = out / f"{name.split()[0]}-{path.name}"
        print(f"  {name}, {rows:,} rows ...", flush=True)
        # The in-process peers are cheap and noisy on a shared machine: best of a few.
        tries = BEST_OF if name in (LIMIT, "naive pandas") else 1
        result = min((run(target) for _ in range(tries)), key=lambda r: r.seconds)
        checked = check_output(model_file, path, target)
        target.unlink()
        table.append(peak_row(name, checked, result.seconds, result.peaks))
    if not args.no_ray:
        table += ray_rows(path, rows, model_file, install=args.ray)
    return table


def ray_rows(path: Path, rows: int, model_file: Path, *, install: bool) -> list[Row]:
    print(f"  Ray Data, {rows:,} rows ...", flush=True)
    try:
        result = run_ray(path, model_file, install=install)
    except RayUnavailable as why:
        return [Row("Ray Data", rows, note=f"no number: {why}")]
    note = "" if result.rows == rows else f"wrote {result.rows:,} lines"
    total = result.init_seconds + result.work_seconds
    return [
        peak_row("Ray Data, with ray.init", rows, total, result.peaks, note),
        peak_row("Ray Data, after ray.init", rows, result.work_seconds, result.peaks, note),
    ]


def scaling_figures(args: argparse.Namespace, sizes: list[int]) -> tuple[list[Row], list[str]]:
    """Everything the stack is measured on: table rows plus the scaling section's lines."""
    rows: list[Row] = []
    lines: list[str] = []
    with ByomStack(args.model_dir, "warm") as stack:
        lines.append(f"- Local stack start-up: {stack.start_seconds:.1f} s")
        for size in sizes:
            print(f"  byom, {size:,} rows ...", flush=True)
            rows.append(byom_row(stack.run_file(data.rows_file(size))))
        # The largest size again, as a SageMaker transform job on the same stack.
        print(f"  byom transform job, {max(sizes):,} rows ...", flush=True)
        rows.append(transform_row(run_transform(stack, data.rows_file(max(sizes)))))
        print(f"  byom, the sample file x{SAMPLE_UPLOADS} ...", flush=True)
        median = stack.median_latency(data.SAMPLE, SAMPLE_UPLOADS)
        lines.append(
            f"- Sample file ({data.count_lines(data.SAMPLE)} rows) on a warm stack: median "
            f"upload -> done event {median:.2f} s over {SAMPLE_UPLOADS} uploads"
        )
        small = data.small_files()
        print(f"  byom, {len(small)} small files at once ...", flush=True)
        seconds, total = stack.burst(small)
        lines.append(
            f"- {len(small)} small files ({total:,} rows) uploaded at once: every done event "
            f"{seconds:.1f} s after the last upload ({total / seconds:,.0f} rows/s)"
        )
        print(f"  byom, AWS calls of one {CALLS_ROWS:,}-row job ...", flush=True)
        lines += calls_lines(*stack.job_calls(data.rows_file(CALLS_ROWS)))
    return rows, lines


def calls_lines(counts, chunks: int, s3_on_moto: bool) -> list[str]:
    lines = [
        f"- AWS calls of one {CALLS_ROWS:,}-row job ({chunks} chunks), from the upload to the"
        " done event (the upload and the benchmark's own calls left out; ReceiveMessage"
        " includes the pollers' idle long polls):",
        "",
        "| service | operation | calls | per chunk |",
        "|---|---|---|---|",
    ]
    for (service, name), count in sorted(counts.items()):
        lines.append(f"| {service} | {name} | {count} | {count / chunks:.2f} |")
    for service in ("S3", "SQS", "DynamoDB"):
        total = sum(count for (svc, _), count in counts.items() if svc == service)
        seen = service != "S3" or s3_on_moto
        per_chunk = f"{total / chunks:.2f}" if seen else "n/a (S3 not served by moto)"
        lines.append(f"| {service} | all | {total if seen else '-'} | {per_chunk} |")
    return [*lines, ""]


def single_child(args: argparse.Namespace, size: int) -> list[str]:
    settings = {"BYOM_MAX_ARRAY_CHILDREN": "1"}
    with ByomStack(args.model_dir, "one-child", settings=settings, batch_parallel=1) as stack:
        print(f"  byom with one child, {size:,} rows ...", flush=True)
        run = stack.run_file(data.rows_file(size))
    children = [role for role in run.peaks.by_role() if role[0] == "batch child"]
    seen = children[0][1] if children else 0
    return [
        f"- One worker child against one endpoint instance ({size:,} rows, "
        f"BYOM_MAX_ARRAY_CHILDREN=1, {seen} process(es) under local Batch): "
        f"{run.rows / run.seconds:,.0f} rows/s upload -> done event ({run.seconds:.1f} s)"
    ]


def big_file(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    path = data.rows_file(data.BIG_ROWS)
    size = path.stat().st_size
    model_file = args.model_dir / "xgboost-model.json"
    print(f"  in-process limit, {data.BIG_ROWS:,} rows ...", flush=True)
    target = data.BENCH_DIR / "out" / f"limit-{path.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    limit = peers.run_peer("limit", path, target, model_file)
    target.unlink()
    with ByomStack(args.model_dir, "2gb") as stack:
        print(f"  byom, {data.BIG_ROWS:,} rows ({report.human_bytes(size)}) ...", flush=True)
        run = stack.run_file(path)
    rows = [peak_row(LIMIT, limit.rows, limit.seconds, limit.peaks), byom_row(run)]
    # moto's threads are not processes, so "moto" is the server alone.
    moto = sum(peak.hwm for peak in run.peaks.processes if peak.role == "moto")
    others = sum(peak.hwm for peak in run.peaks.processes if peak.role != "moto")
    lines = [
        f"- {report.human_bytes(size)} input, peak RSS (VmHWM) of every process: "
        + report.roles_line(run.peaks.by_role()),
        f"  - the local S3 (moto): {report.human_bytes(moto)}; byom's own processes: "
        f"{report.human_bytes(others)} (their VmHWMs added up; "
        f"{report.human_bytes(run.peaks.total_rss)} for all at the busiest instant)",
    ]
    return rows, lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.ray = args.ray or os.environ.get("BENCH_RAY") == "1"
    # SIGTERM would skip the stacks' clean-up; make it an exit.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    sizes = sorted(args.sizes)
    header = f"Machine: {report.machine()}"
    print(header, flush=True)
    print("generating data (cached in .bench/data) ...", flush=True)
    for size in sizes:
        data.rows_file(size)

    table: list[Row] = []
    for size in sizes:
        table += single_machine_rows(data.rows_file(size), size, args)
    byom_rows, lines = scaling_figures(args, sizes)
    table += byom_rows
    # Big enough for the child's own rate to dominate its start-up.
    lines += single_child(args, max([CALLS_ROWS, *(s for s in sizes if s <= 1_000_000)]))
    if not args.skip_2gb:
        big_rows, big_lines = big_file(args)
        table += big_rows
        lines += big_lines

    table.sort(key=lambda row: row.rows)  # stable: each size's limit row stays first
    text = "\n".join(
        [
            header,
            "",
            report.table(table),
            "",
            "Seconds: the work only (a peer's imports and byom's upload excluded; byom from upload"
            f" finished to done event); the limit and pandas are the best of {BEST_OF} runs,"
            " every other row one run. Peak RSS: the sum over every process of the run at its"
            " busiest instant; the processes column gives each one's VmHWM.",
            "",
            "## Peak RSS (VmHWM) of every process, by run",
            "",
            *report.breakdown([row for row in table if not row.name.endswith("after ray.init")]),
            "",
            "## For scaling",
            "",
            *lines,
        ]
    )
    print("\n" + text, flush=True)
    results = data.BENCH_DIR / "results.md"
    results.write_text(text + "\n")
    print(f"\nwritten to {results.relative_to(REPO)}")


if __name__ == "__main__":
    main()
