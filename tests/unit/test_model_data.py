from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.data import (
    COLUMNS,
    FEATURES,
    FRAUD_RATE,
    LABEL,
    SECONDS,
    generate,
    load_creditcard,
)
from tests.features import write_feature_csv


def test_same_seed_same_frame_other_seed_other_frame():
    pd.testing.assert_frame_equal(generate(2000, seed=3), generate(2000, seed=3))
    assert not generate(2000, seed=3).equals(generate(2000, seed=4))


def test_columns_and_types():
    frame = generate(500, seed=1)
    assert list(frame.columns) == list(COLUMNS)
    assert len(COLUMNS) == 31 and len(FEATURES) == 30
    assert (frame.dtypes[list(FEATURES)] == np.float64).all()
    assert frame[LABEL].dtype == np.int64
    assert set(frame[LABEL].unique()) <= {0, 1}


def test_looks_like_the_real_data():
    frame = generate(100_000, seed=1)
    assert frame[LABEL].sum() == round(100_000 * FRAUD_RATE) == 173
    time = frame["Time"].to_numpy()
    assert (np.diff(time) >= 0).all() and time[0] >= 0 and time[-1] <= SECONDS
    assert (time == np.floor(time)).all()
    # sparse at night: the quietest hour has far fewer transactions than the busiest
    per_hour = np.bincount((time // 3600 % 24).astype(int), minlength=24)
    assert per_hour.min() < per_hour.max() / 4
    genuine = frame[frame[LABEL] == 0]
    v = genuine[[f"V{i}" for i in range(1, 29)]]
    assert np.abs(v.mean()).max() < 0.05
    assert 1.8 < v["V1"].std() < 2.3 and 0.3 < v["V28"].std() < 0.4
    amount = frame["Amount"]
    assert (amount >= 0).all() and 10 < amount.median() < 40 and amount.mean() > amount.median()


def test_fraud_rows_move_along_the_real_sets_components():
    frame = generate(20_000, seed=2, fraud_rate=0.05)
    fraud = frame[frame[LABEL] == 1]
    for name in ("V14", "V12", "V10", "V17"):
        assert fraud[name].mean() < -2, name
    for name in ("V4", "V11"):
        assert fraud[name].mean() > 1, name
    assert abs(fraud["V28"].mean()) < 0.2


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1), rate=st.floats(0, 1))
def test_fraud_count_is_exact(rows, seed, rate):
    frame = generate(rows, seed=seed, fraud_rate=rate)
    assert len(frame) == rows
    assert frame[LABEL].sum() == round(rows * rate)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rows"):
        generate(-1, seed=0)
    with pytest.raises(ValueError, match="fraud_rate"):
        generate(10, seed=0, fraud_rate=1.5)


def test_feature_csv_round_trips_exactly():
    frame = generate(1000, seed=5, fraud_rate=0.1)
    buffer = io.StringIO()
    write_feature_csv(frame, buffer)
    text = buffer.getvalue()
    assert "\r" not in text and text.endswith("\n") and text.count("\n") == 1000
    assert all(line.count(",") == 29 for line in text.splitlines())
    back = pd.read_csv(io.StringIO(text), header=None, dtype=np.float64)
    np.testing.assert_array_equal(back.to_numpy(), frame.loc[:, list(FEATURES)].to_numpy())


def test_feature_csv_header_and_path(tmp_path):
    frame = generate(20, seed=6)
    path = tmp_path / "rows.csv"
    write_feature_csv(frame, path, header=True)
    lines = path.read_bytes().split(b"\n")
    assert lines[0].decode() == ",".join(FEATURES)
    assert len(lines) == 22 and lines[-1] == b""


def test_load_creditcard_reads_the_real_files_layout(tmp_path):
    frame = generate(50, seed=7, fraud_rate=0.2)
    path = tmp_path / "creditcard.csv"
    # The real file quotes its header and the Class values.
    frame.astype({LABEL: str}).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)
    text = path.read_text()
    assert text.startswith('"Time","V1"') and text.splitlines()[1].endswith(',"0"')
    loaded = load_creditcard(path)
    pd.testing.assert_frame_equal(loaded, frame)


def test_load_creditcard_names_missing_columns(tmp_path):
    path = tmp_path / "partial.csv"
    generate(5, seed=0).drop(columns=["V7", LABEL]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"partial\.csv: missing columns V7, Class"):
        load_creditcard(path)
