"""Train the sample fraud model and save it in XGBoost's own JSON format.

    python -m model.train --out model/artifacts [--data creditcard.csv] [--rows 100000]
                          [--seed 7] [--rounds 100]

The parameters are those of AWS's "fraud detection using machine learning"
notebook (depth 5, eta 0.2, gamma 4, min_child_weight 6, subsample 0.8), without
class weighting so that the scores stay calibrated probabilities. The model file
is the only output: JSON carries no code, unlike a pickle, so the server can load
it from an untrusted directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from model.data import FEATURES, LABEL, generate, load_creditcard

if TYPE_CHECKING:
    import xgboost

MODEL_FILE = "xgboost-model.json"

PARAMS: dict[str, object] = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": 5,
    "eta": 0.2,
    "gamma": 4,
    "min_child_weight": 6,
    "subsample": 0.8,
    "tree_method": "hist",
    # A fixed thread count keeps histogram sums in the same order on every machine,
    # so the same data and seed give the same model file.
    "nthread": 2,
}


def train(frame: pd.DataFrame, rounds: int = 100, seed: int = 7) -> xgboost.Booster:
    """A booster fitted on every row of `frame` (columns `FEATURES` and `LABEL`)."""
    import xgboost

    matrix = xgboost.DMatrix(
        frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float32),
        label=frame[LABEL].to_numpy(),
        feature_names=list(FEATURES),
    )
    return xgboost.train({**PARAMS, "seed": seed}, matrix, num_boost_round=rounds)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    positives = labels == 1
    n_pos = int(positives.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def split(
    frame: pd.DataFrame, seed: int, held_out: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test rows, each class split in the same proportion."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(frame), dtype=bool)
    for value in (0, 1):
        index = np.flatnonzero(frame[LABEL].to_numpy() == value)
        test[rng.choice(index, size=round(len(index) * held_out), replace=False)] = True
    return frame[~test], frame[test]


def save(booster: xgboost.Booster, out: Path) -> Path:
    """Write the model file atomically, so a half-written file never looks like a model."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MODEL_FILE
    # XGBoost picks the format from the suffix, so the temporary name keeps ".json".
    partial = out / f".{MODEL_FILE}.{os.getpid()}.json"
    booster.save_model(str(partial))
    partial.replace(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for xgboost-model.json")
    parser.add_argument("--data", type=Path, help="the real creditcard.csv; synthetic if absent")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic rows (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds (default 100)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        frame = load_creditcard(args.data) if args.data else generate(args.rows, seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"cannot read training data: {exc}", file=sys.stderr)
        return 2
    train_rows, test_rows = split(frame, args.seed)
    booster = train(train_rows, rounds=args.rounds, seed=args.seed)
    path = save(booster, args.out)

    import xgboost

    scores = booster.predict(
        xgboost.DMatrix(
            test_rows.loc[:, list(FEATURES)].to_numpy(dtype=np.float32),
            feature_names=list(FEATURES),
        )
    )
    source = args.data or "synthetic data"
    print(
        f"trained on {len(train_rows)} of {len(frame)} rows from {source} "
        f"({int(frame[LABEL].sum())} fraud), {args.rounds} rounds; "
        f"held-out AUC {auc(test_rows[LABEL].to_numpy(), scores):.4f} on {len(test_rows)} rows "
        f"({int(test_rows[LABEL].sum())} fraud); wrote {path} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
