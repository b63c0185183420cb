"""The worker's one parse agrees with the grammar, whichever path a chunk takes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.inference_worker.parse import fast_parse, parse_rows, shift_lines
from shared.rows import find_problems, parse_row, split_lines

URI = "s3://byom-local/input/f.csv"


def test_good_rows_take_the_vectorised_path():
    data = b"1,2.5,-3\r\n.5,5.,1e-3\n+2E+05,0,-0"
    values = fast_parse(data, 3)
    assert values is not None and values.dtype == np.float32
    assert values.tolist() == [[1, 2.5, -3], [0.5, 5, np.float32(1e-3)], [2e5, 0, 0]]


@pytest.mark.parametrize(
    "data",
    [
        b'"1"2,3,4\n',  # pyarrow alone would read 12
        b'1,"" 5,3\n',  # ... and 5 here
        b"1,2,3\r4,5,6\n",  # pyarrow alone would take a bare CR for a line end
        b"1e39,2,3\n",  # float32 would make it infinity
        b"nan,2,3\n",
        b"1_0,2,3\n",
        b' "1",2,3\n',
        b"1,2\n",
        b"1,2,3\n\n",
    ],
)
def test_what_the_grammar_rejects_never_takes_the_fast_path(data):
    assert fast_parse(data, 3) is None
    parsed = parse_rows(data, columns=3, uri=URI)
    assert parsed.rejected


def test_rejected_rows_are_set_aside_and_good_ones_kept_in_order():
    data = b"1,2,3\nx,2,3\n4,5,6\n1e39,0,0\n7,8,9\n"
    parsed = parse_rows(data, columns=3, uri=URI)
    assert parsed.rows == 5
    assert sorted(parsed.rejected) == [1, 3]
    assert parsed.values.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    moved = shift_lines(parsed.rejected, 100)
    assert [(p.line, p.column) for p in moved.values()] == [(102, 1), (104, 1)]


def test_good_rows_beyond_the_fast_path_are_read_exactly():
    data = b'"1" ,2,3\n4 ,"5 ",6\n'
    parsed = parse_rows(data, columns=3, uri=URI)
    assert not parsed.rejected
    assert parsed.values.tolist() == [[1, 2, 3], [4, 5, 6]]


cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.text(alphabet='0123456789+-.eE "\t_x\r', min_size=0, max_size=8),
    st.sampled_from(
        ["1e39", "-1e39", "nan", "inf", '"1"', '"2.5 "', ' "3"', '"4"5', "1e5", '"" 5', '" "1']
    ),
)
rows = st.lists(st.lists(cells, min_size=2, max_size=4).map(",".join), min_size=1, max_size=20)


@settings(max_examples=500, deadline=None)
@given(rows=rows, crlf=st.booleans())
def test_fast_path_accepts_only_what_the_grammar_accepts_with_the_same_values(rows, crlf):
    data = ("\r\n" if crlf else "\n").join(rows).encode() + b"\n"
    problems = dict(find_problems(data, first_line=1, columns=3, uri=URI))
    fast = fast_parse(data, 3)
    if fast is not None:
        assert not problems
        exact = [parse_row(line) for line in split_lines(data)]
        assert fast.tolist() == np.array(exact, dtype=np.float32).tolist()
    parsed = parse_rows(data, columns=3, uri=URI)
    assert set(parsed.rejected) == set(problems)
    assert len(parsed.values) == parsed.rows - len(problems)


def test_lines_over_the_limit_are_bad_rows_with_their_line():
    data = b"1,2,3\n" + b"1," * 50 + b"3\n" + b"4,5,6"
    parsed = parse_rows(data, columns=3, uri=URI, first_line=10, max_line_bytes=20)
    assert sorted(parsed.rejected) == [1]
    problem = parsed.rejected[1]
    assert problem.line == 11 and "longer than the 20-byte limit" in problem.reason
    assert parsed.values.tolist() == [[1, 2, 3], [4, 5, 6]]
    within = parse_rows(data, columns=3, uri=URI, max_line_bytes=200).rejected
    assert "expected 3 columns, found 51" in within[1].reason  # long, but within the limit
