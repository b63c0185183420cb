"""Request bodies for tests: the feature columns of `model.data` frames as CSV."""

from __future__ import annotations

import os
from typing import IO

import pandas as pd

from model.data import FEATURES


def write_feature_csv(
    frame: pd.DataFrame, path_or_buffer: str | os.PathLike[str] | IO[str], header: bool = False
) -> None:
    """Feature columns only, in `FEATURES` order: what the endpoint expects as input.

    Floats are written at full (round-trip) precision and lines end with "\\n".
    """
    frame.loc[:, list(FEATURES)].to_csv(
        path_or_buffer, header=header, index=False, lineterminator="\n"
    )
