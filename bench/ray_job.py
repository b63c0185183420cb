"""The Ray Data peer, run by the Ray venv's Python (not byom's): stdlib, ray, xgboost.

    PYTHONPATH=REPO python bench/ray_job.py SOURCE OUT_DIR MODEL_FILE

read_csv (float32) -> map_batches (tasks; a booster per worker process) ->
write_csv, order preserved as byom preserves it. Prints one JSON line with the
start-up (ray.init) and the work timed apart.
"""

from __future__ import annotations

import functools
import json
import sys
import time


@functools.cache
def _booster(model_file: str):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(model_file)
    return booster


def predict(batch: dict, model_file: str) -> dict:
    """One batch's probabilities; each worker process loads the booster once.

    Tasks, not an actor pool: on 2 CPUs a pool of 2 actors holds both CPUs and the
    read tasks that feed it wait forever.
    """
    import numpy as np

    features = np.column_stack([batch[name] for name in sorted(batch, key=_index)])
    return {"p": _booster(model_file).inplace_predict(features, validate_features=False)}


def _index(name: str) -> int:
    return int(name[1:])


def main() -> None:
    source, out_dir, model_file = sys.argv[1:4]
    started = time.perf_counter()
    import pyarrow as pa
    import ray  # type: ignore[import-not-found]  # only in .bench/ray-venv
    from pyarrow import csv

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    initialised = time.perf_counter()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = ray.data.read_csv(
        source,
        read_options=csv.ReadOptions(autogenerate_column_names=True),
        convert_options=csv.ConvertOptions(column_types={f"f{i}": pa.float32() for i in range(30)}),
    )
    # By reference to this module (importable as bench.ray_job on the workers'
    # PYTHONPATH), so each worker process keeps one booster in _booster's cache.
    from bench.ray_job import predict

    dataset.map_batches(
        predict, fn_kwargs={"model_file": model_file}, batch_format="numpy"
    ).write_csv(
        out_dir, arrow_csv_args_fn=lambda: {"write_options": csv.WriteOptions(include_header=False)}
    )
    finished = time.perf_counter()
    ray.shutdown()
    print(
        json.dumps({"init_seconds": initialised - started, "work_seconds": finished - initialised})
    )


if __name__ == "__main__":
    main()
