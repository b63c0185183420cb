"""Property tests for `text/libsvm` bodies (model/libsvm.py) and container.json
(model/server/container_settings.py), both read from untrusted bytes.

For any bytes, the libsvm reader returns float32 rows or raises its own
`BadRequest`, and container.json's reader returns settings or raises
`ContainerSettingsError`: nothing else, within a memory bound. Rows written as
libsvm read back as the same dense rows, missing values as NaN.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from model.flavors.base import BadRequest
from model.libsvm import parse_libsvm
from model.server.container_settings import ContainerSettingsError, parse_settings

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)
MIB = 1024 * 1024
# The bodies are a few KiB; the dense rows are held to CELLS values (4 MiB).
CELLS = 1 << 20
MEMORY = 16 * MIB

LIBSVM_ALPHABET = st.sampled_from(
    [b"0", b"1", b"2", b"9", b":", b" ", b"\t", b"\n", b"\r", b".", b"-", b"e", b"+", b"x", b"\xff"]
)


def only(error: type[E], call: Callable[[], T], limit: int = MEMORY) -> T | E:
    """What `call` returns or the `error` it raises, within `limit` bytes."""
    tracemalloc.start()
    try:
        result: T | E = call()
    except error as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= limit, f"allocated {peak} bytes, over the {limit}-byte bound"
    return result


@given(
    st.one_of(st.binary(max_size=2048), st.lists(LIBSVM_ALPHABET, max_size=300).map(b"".join)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=64)),
)
def test_any_bytes_are_rows_or_a_bad_request(body: bytes, feature_count: int | None) -> None:
    result = only(BadRequest, lambda: parse_libsvm(body, feature_count, CELLS))
    if isinstance(result, np.ndarray):
        assert result.dtype == np.float32 and result.ndim == 2
        if feature_count is not None:
            assert result.shape[1] == feature_count


FINITE = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(
    st.integers(min_value=1, max_value=8).flatmap(
        lambda width: st.lists(
            st.lists(st.one_of(st.none(), FINITE), min_size=width, max_size=width),
            min_size=1,
            max_size=8,
        )
    ),
    st.booleans(),
    st.booleans(),
)
def test_rows_written_as_libsvm_read_back(
    rows: list[list[float | None]], labelled: bool, zero_based: bool
) -> None:
    width = len(rows[0])
    # The body is 0-based only where it names index 0, as the XGBoost container reads it.
    base = 0 if zero_based and rows[0][0] is not None else 1
    lines = []
    for row in rows:
        pairs = [f"{i + base}:{value!r}" for i, value in enumerate(row) if value is not None]
        lines.append(" ".join((["1"] if labelled or not pairs else []) + pairs))
    got = parse_libsvm(("\n".join(lines) + "\n").encode(), width)
    expected = np.array([[np.nan if v is None else v for v in row] for row in rows], np.float32)
    np.testing.assert_array_equal(got, expected)


@given(st.one_of(st.binary(max_size=1024), st.text(max_size=256).map(str.encode)))
def test_any_bytes_are_container_settings_or_its_error(data: bytes) -> None:
    only(ContainerSettingsError, lambda: parse_settings(data))


@given(
    st.dictionaries(
        st.text(max_size=20),
        st.one_of(st.text(max_size=30), st.integers(), st.none()),
        max_size=5,
    ),
    st.one_of(st.none(), st.text(max_size=20), st.integers()),
)
def test_any_json_document_is_settings_or_its_error(
    environment: dict[str, object], image: object
) -> None:
    document = {"environment": environment} if image is None else {"image": image}
    only(ContainerSettingsError, lambda: parse_settings(json.dumps(document).encode()))


def test_the_dense_rows_are_bounded_before_they_are_made() -> None:
    wide = b"1:1\n" * 3 + b"1000000:1\n"  # 4 rows of a million features
    result = only(BadRequest, lambda: parse_libsvm(wide, None, CELLS))
    assert isinstance(result, BadRequest) and "more than 1048576 values" in str(result)
    result = only(BadRequest, lambda: parse_libsvm(b"1048577:1", None, CELLS))
    assert isinstance(result, BadRequest) and "past the limit" in str(result)
