"""The number grammar and row checks on any bytes: an answer or an InputError, quickly.

tests/unit/test_rows.py holds the grammar's examples; these hold its properties:
every row the grammar describes is accepted with its values, any other bytes
give an ``InputError`` at a line and column inside the row, nothing else is ever
raised, and no line takes more than linear time (hypothesis's deadline bounds
each example; the long lines below would take hours if the regex backtracked).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import InputError
from shared.rows import (
    FLOAT32_MAX,
    check_rows,
    header_names,
    line_problem,
    parse_row,
    split_cells,
)
from tests.unit.bounds import MIB, within_memory

URI = "s3://byom-local/input/f.csv"


@pytest.mark.timeout(60)  # before the fix, hours: [0-9]+\.?[0-9]* backtracked quadratically
@pytest.mark.parametrize("tail", [b"x,2,3", b"e,2,3", b".x,2,3", b',2,3"'])
def test_a_long_run_of_digits_is_judged_in_linear_time(tail: bytes) -> None:
    raw = b"1" * (256 * 1024) + tail
    problem = line_problem(raw, line=4, columns=3, uri=URI)
    assert problem is not None and (problem.line, problem.column) == (4, 1)


def test_a_long_good_number_is_accepted() -> None:
    raw = b"0." + b"1" * (256 * 1024) + b",2,3"
    assert line_problem(raw, line=1, columns=3, uri=URI) is None


digits = st.text("0123456789", min_size=1, max_size=12)
mantissas = st.one_of(
    digits,
    st.builds(lambda a, b: f"{a}.{b}", digits, st.text("0123456789", max_size=8)),
    st.builds(lambda b: f".{b}", digits),
)
numbers = st.builds(
    lambda sign, mantissa, exponent: sign + mantissa + exponent,
    st.sampled_from(["", "+", "-"]),
    mantissas,
    st.one_of(
        st.just(""),
        st.builds(
            lambda e, s, d: e + s + d[:2],
            st.sampled_from("eE"),
            st.sampled_from(["", "+", "-"]),
            digits,
        ),
    ),
)
blanks = st.text(" \t", max_size=2)


@st.composite
def cells(draw: st.DrawFn) -> tuple[str, float]:
    number = draw(numbers)
    before, after = draw(blanks), draw(blanks)
    if draw(st.booleans()):
        return f'"{before}{number}{after}"{draw(blanks)}', float(number)
    return f"{before}{number}{after}", float(number)


@given(st.lists(cells(), min_size=1, max_size=8), st.sampled_from(["", "\r"]))
def test_every_row_the_grammar_describes_is_accepted_with_its_values(
    row: list[tuple[str, float]], ending: str
) -> None:
    values = [value for _, value in row]
    raw = (",".join(cell for cell, _ in row) + ending).encode()
    problem = line_problem(raw, line=1, columns=len(row), uri=URI)
    if all(abs(v) <= FLOAT32_MAX for v in values):
        assert problem is None
        assert parse_row(raw) == values
    else:
        assert problem is not None and "float32 range" in problem.reason


@given(st.binary(max_size=200), st.integers(1, 6))
def test_any_line_is_a_row_or_an_input_error_inside_it(raw: bytes, columns: int) -> None:
    problem = within_memory(lambda: line_problem(raw, line=9, columns=columns, uri=URI), 1 * MIB)
    if problem is None:
        values = np.array(parse_row(raw), dtype=np.float64)
        assert len(values) == columns
        assert all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values)
        assert np.isfinite(values.astype(np.float32)).all()
    else:
        assert isinstance(problem, InputError) and problem.line == 9 and problem.uri == URI
        assert problem.column is None or 1 <= problem.column <= columns + 1


line_bytes = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from([b"1", b"-2.5", b",", b'"', b" ", b"\r", b"e", b".", b"x"]),
             max_size=30).map(b"".join),
)  # fmt: skip


@given(st.lists(line_bytes, max_size=8), st.integers(1, 4), st.integers(1, 1000))
def test_check_rows_counts_the_lines_or_names_the_first_bad_one(
    lines: list[bytes], columns: int, first_line: int
) -> None:
    data = b"\n".join(line.replace(b"\n", b"") for line in lines)
    try:
        count = check_rows(data, first_line=first_line, columns=columns, uri=URI)
    except InputError as error:
        assert error.line is not None
        assert first_line <= error.line < first_line + max(len(lines), 1)
    else:
        assert count == len([x for x in data.split(b"\n")]) - (data.endswith(b"\n") or not data)


@given(st.binary(max_size=120))
def test_a_header_is_names_or_nothing(line: bytes) -> None:
    names = header_names(line)
    assert names is None or all(isinstance(n, str) and n for n in names)


@given(st.text(alphabet=st.sampled_from('ab1,"\t '), max_size=40))
def test_cells_put_back_together_are_the_line(text: str) -> None:
    cells = split_cells(text)
    if isinstance(cells, list):
        assert ",".join(cells) == text
    else:
        assert "quoted field runs past the end of the line" in cells
