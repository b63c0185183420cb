from __future__ import annotations

import pytest

from shared.errors import InputError
from shared.rows import check_rows, header_names

URI = "s3://byom-local/input/f.csv"


def test_header_detection():
    assert header_names(b"Time,V1,V2,Amount\n") is not None
    assert header_names(b'"Time", "V1"\r\n') == ["Time", "V1"]
    assert not (header_names(b"0,1.5,-2,3e4\n") is not None)
    assert not (header_names(b"0,abc,2\n") is not None)  # a bad row, not a header
    assert not (header_names(b"\xff\xfe\n") is not None)
    assert not (header_names(b"a,,b\n") is not None)  # an empty name is not a header


def test_good_rows_are_counted():
    assert check_rows(b"1,2,3\n4,5,6\r\n7,8,9", first_line=1, columns=3, uri=URI) == 3


@pytest.mark.parametrize(
    "row",
    [
        b"1,-0.5,+2",
        b".5,5.,1e-3",
        b"+2E+05,0,-0",
        b" 1 ,\t2\t, 3",
        b'"1","2.5",3',
        b'" 1 ",2,"3"  ',
        b"3.4028234e38,-3.4028234e38,1e-50",
    ],
)
def test_the_grammar_accepts(row):
    assert check_rows(row + b"\n", first_line=1, columns=3, uri=URI) == 1


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (b"1_000,2,3", 1, "'1_000' is not a number"),
        (b"1,\xd9\xa3,3", 2, "U+0663"),  # an Arabic-Indic digit three
        (b"1,\xc2\xa02,3", 2, "U+00A0"),  # a non-breaking space
        (b'1, "2",3', 2, "is not a number"),  # a space before the opening quote
        (b"1,2\r3,4", 2, "carriage return inside the line"),
        (b'"1",2\r3,4', 2, "carriage return inside the line"),
        (b"1e39,2,3", 1, "beyond the float32 range"),
        (b"1,-1e39,3", 2, "beyond the float32 range"),
        (b"1,0x10,3", 2, "is not a number"),
        (b"1,2,inf", 3, "not a finite number"),
        (b"1,2,-Infinity", 3, "not a finite number"),
        (b'"1"2,3,4', 1, "is not a number"),
        (b'"1,5",2,3', 1, "is not a number"),
        (b'"1,2,3', 1, "quoted field runs past the end of the line"),
        (b"1,2,3,", 4, "expected 3 columns, found 4"),
        (b"1e5.5,2,3", 1, "is not a number"),
    ],
)
def test_the_grammar_rejects_with_line_and_column(row, column, reason):
    with pytest.raises(InputError) as caught:
        check_rows(b"1,2,3\n" + row + b"\n", first_line=7, columns=3, uri=URI)
    error = caught.value
    assert (error.line, error.column) == (8, column)
    assert reason in error.reason


@pytest.mark.parametrize(
    ("data", "line", "column", "reason"),
    [
        (b"1,2,3\n4,5\n", 11, 3, "expected 3 columns, found 2"),
        (b"1,2,3\n4,5,6,7\n", 11, 4, "expected 3 columns, found 4"),
        (b"1,2,3\n4,x,6\n", 11, 2, "'x' is not a number"),
        (b"1,2,3\n4,nan,6\n", 11, 2, "not a finite number"),
        (b"1,2,3\n4,,6\n", 11, 2, "empty cell"),
        (b"1,2,3\n\n4,5,6\n", 11, None, "empty line"),
        (b"1,2,\xff\n", 10, 3, "not UTF-8"),
    ],
)
def test_errors_name_line_and_column(data, line, column, reason):
    with pytest.raises(InputError) as caught:
        check_rows(data, first_line=10, columns=3, uri=URI)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert reason in str(error)
    assert str(error).startswith(f"{URI}, line {line}")
