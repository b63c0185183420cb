"""Check an output file against xgboost's own predictions, a block at a time.

One line per input row, in input order, every value within ``TOLERANCE`` of
``Booster.inplace_predict`` on the same rows read as float32 (what byom's model
server scores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TOLERANCE = 1e-6
BLOCK_ROWS = 500_000


class OutputMismatch(AssertionError):
    pass


def check_output(model_file: Path, source: Path, output: Path) -> int:
    """The number of rows checked; raises ``OutputMismatch`` naming the first bad line."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(model_file))
    inputs = pd.read_csv(source, header=None, dtype=np.float32, chunksize=BLOCK_ROWS)
    outputs = pd.read_csv(
        output, header=None, dtype=np.float64, chunksize=BLOCK_ROWS, skip_blank_lines=False
    )
    checked = 0
    for features in inputs:
        expected = booster.inplace_predict(features.to_numpy(), validate_features=False)
        got = next(outputs, None)
        if got is None or len(got) != len(expected):
            have = checked + (0 if got is None else len(got))
            raise OutputMismatch(f"{output}: about {have:,} lines for {source}'s rows; short")
        values = got.iloc[:, 0].to_numpy()
        bad = np.flatnonzero(~(np.abs(values - expected) <= TOLERANCE))
        if bad.size:
            line = checked + int(bad[0]) + 1
            raise OutputMismatch(
                f"{output}, line {line:,}: {values[bad[0]]} but xgboost says {expected[bad[0]]}"
            )
        checked += len(expected)
    if next(outputs, None) is not None:
        raise OutputMismatch(f"{output}: more lines than {source} has rows ({checked:,})")
    return checked
