from __future__ import annotations

import pytest

from shared.errors import InputError
from shared.rows import check_rows, looks_like_header

URI = "s3://byom-local/input/f.csv"


def test_header_detection():
    assert looks_like_header(b"Time,V1,V2,Amount\n")
    assert looks_like_header(b'"Time","V1"\r\n')
    assert not looks_like_header(b"0,1.5,-2,3e4\n")
    assert not looks_like_header(b"0,abc,2\n")  # a bad row, not a header
    assert not looks_like_header(b"\xff\xfe\n")


def test_good_rows_are_counted():
    assert check_rows(b"1,2,3\n4,5,6\r\n7,8,9", first_line=1, columns=3, uri=URI) == 3


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
