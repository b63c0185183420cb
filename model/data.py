"""Training data: a synthetic stand-in for the ULB credit-card-fraud set, or the real file.

The real data set (284,807 card transactions over two days, 492 of them fraud) is
behind a Kaggle login, so tests and the demo use `generate`, which imitates its
shape: `Time` in seconds since the first transaction, 28 PCA components `V1..V28`
with the real set's falling variances, a log-normal `Amount`, and `Class` 1 for
fraud. Fraud rows are pushed along the same components that separate fraud in the
real data (V14, V12, V10, V17 down; V4, V11 up), by a random amount per row, so
a model finds most of them but not all.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
LABEL = "Class"
COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)

# 492 of 284,807 in the real set.
FRAUD_RATE = 492 / 284_807
SECONDS = 2 * 24 * 3600

# Standard deviations of V1..V28 in the real set: PCA components, largest first.
_V_SCALE = np.array(
    [
        1.96, 1.65, 1.52, 1.42, 1.38, 1.33, 1.24, 1.19, 1.10, 1.09, 1.02, 1.00, 0.99, 0.96,
        0.92, 0.88, 0.85, 0.84, 0.81, 0.77, 0.74, 0.73, 0.62, 0.61, 0.52, 0.48, 0.40, 0.33,
    ]
)  # fmt: skip

# Mean of each component over the real set's fraud rows (0 over all rows), kept to
# the components where the difference is large.
_FRAUD_MEANS = {
    1: -4.8, 2: 3.6, 3: -7.0, 4: 4.5, 5: -3.2, 7: -5.6, 9: -2.6, 10: -5.7,
    11: 3.8, 12: -6.3, 14: -7.0, 16: -4.1, 17: -6.7, 18: -2.3,
}  # fmt: skip
_FRAUD_SHIFT = np.array([_FRAUD_MEANS.get(component, 0.0) for component in range(1, 29)])

# Share of genuine rows that are unusual (wide spread) and so look a little like fraud.
_UNUSUAL_RATE = 0.01


def _times(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Sorted whole seconds over two days, sparse at night as in the real set."""
    grid = np.arange(0, SECONDS + 1, 60, dtype=np.float64)
    hour = (grid / 3600) % 24
    density = 1.08 + np.sin(2 * np.pi * (hour - 9) / 24)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2)])
    cdf /= cdf[-1]
    return np.floor(np.interp(np.sort(rng.random(rows)), cdf, grid))


def generate(rows: int, seed: int = 0, *, fraud_rate: float = FRAUD_RATE) -> pd.DataFrame:
    """`rows` transactions with columns `COLUMNS`; the same arguments give the same frame.

    Exactly `round(rows * fraud_rate)` rows are fraud, at random positions.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if not 0 <= fraud_rate <= 1:
        raise ValueError(f"fraud_rate must be within [0, 1], got {fraud_rate}")
    rng = np.random.default_rng(seed)
    fraud = np.zeros(rows, dtype=bool)
    fraud[rng.choice(rows, size=round(rows * fraud_rate), replace=False)] = True
    n_fraud = int(fraud.sum())

    spread = np.where(rng.random(rows) < _UNUSUAL_RATE, 2.5, 1.0)
    spread[fraud] = 1.6
    v = rng.standard_normal((rows, 28)) * spread[:, None] * _V_SCALE

    # Per-row severity: some frauds sit far out, some barely differ from normal rows.
    severity = rng.beta(2.0, 1.6, size=n_fraud)
    v[fraud] += severity[:, None] * _FRAUD_SHIFT

    amount = rng.lognormal(mean=3.0, sigma=1.5, size=rows)
    amount[fraud] = rng.lognormal(mean=2.2, sigma=2.0, size=n_fraud)
    amount[rng.random(rows) < 0.006] = 0.0
    amount = np.minimum(amount, 25_000.0).round(2)

    frame = pd.DataFrame(np.round(v, 6), columns=list(FEATURES[1:-1]))
    frame.insert(0, "Time", _times(rng, rows))
    frame["Amount"] = amount
    frame[LABEL] = fraud.astype(np.int64)
    return frame


def load_creditcard(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The real `creditcard.csv` (with its header row), columns in `COLUMNS` order."""
    path = Path(path)
    frame = pd.read_csv(path)
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing columns {', '.join(missing)}; "
            f"expected a header row with {', '.join(COLUMNS)}"
        )
    frame = frame.loc[:, list(COLUMNS)]
    labels = set(frame[LABEL].unique().tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"{path}: column {LABEL} must hold 0 or 1, found {sorted(labels)}")
    return frame.astype({name: np.float64 for name in FEATURES} | {LABEL: np.int64})
