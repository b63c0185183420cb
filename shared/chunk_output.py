"""What a scored chunk leaves in staging, the same whoever scored it (worker or scheduler).

The chunk's output object holds one prediction line per input row, in order; a
row rejected under the skip policy gets an empty line, so output line *n* is still
input row *n*. Its metadata records the counts, so a retry can reuse it. The
rejected rows are listed in the chunk's errors object as ``line,column,reason``.
Pure Python: the scheduler's Lambda bundle carries no numpy.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Mapping, Sequence

from shared.errors import InputError, PredictionCountError
from shared.processing import prediction_column_names

ROWS_METADATA = "byom-rows"
BAD_ROWS_METADATA = "byom-bad-rows"


def metadata(rows: int, bad_rows: int) -> dict[str, str]:
    return {ROWS_METADATA: str(rows), BAD_ROWS_METADATA: str(bad_rows)}


def counts(object_metadata: Mapping[str, str]) -> tuple[int, int] | None:
    """(rows, bad rows) recorded on a chunk output; None if it has no such record."""
    if ROWS_METADATA not in object_metadata:
        return None
    return int(object_metadata[ROWS_METADATA]), int(object_metadata.get(BAD_ROWS_METADATA, 0))


def lines_of(data: bytes) -> list[bytes]:
    """The lines of ``data`` without their ``\\n`` (a missing final newline is fine)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def prediction_lines(answers: Sequence[bytes]) -> bytes:
    """The endpoint's answers, in order, each ending with a newline."""
    return b"".join(a if a.endswith(b"\n") or not a else a + b"\n" for a in answers)


def checked_answers(answers: Sequence[bytes], rows: Sequence[int]) -> bytes:
    """The answers in order (as ``prediction_lines``), each checked to hold one line
    per row of its own request: a total that matches can still pair rows with
    another row's prediction (99 + 101 lines for two requests of 100)."""
    for number, (answer, expected) in enumerate(zip(answers, rows, strict=True), 1):
        answered = answer.count(b"\n") + (0 if not answer or answer.endswith(b"\n") else 1)
        if answered != expected:
            raise PredictionCountError(answered, expected, request=number, requests=len(answers))
    return prediction_lines(answers)


def with_blanks(predictions: bytes, rows: int, rejected: Collection[int]) -> bytes:
    """Put an empty line where each rejected row was, so output lines match input lines."""
    scored = iter(lines_of(predictions))
    return b"".join(b"\n" if i in rejected else next(scored) + b"\n" for i in range(rows))


def header_line(names: tuple[str, ...], predictions: bytes) -> bytes:
    """The output's first line for an upload with a header: the prediction columns'
    names, as many as the first scored line has cells."""
    first = next((line for line in lines_of(predictions) if line), None)
    count = first.count(b",") + 1 if first is not None else len(names)
    return (",".join(prediction_column_names(names, count)) + "\n").encode()


def errors_csv(rejected: Mapping[int, InputError]) -> bytes:
    """``line,column,reason`` for each rejected row, in row order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for index in sorted(rejected):
        problem = rejected[index]
        writer.writerow([problem.line, problem.column or "", problem.reason])
    return buffer.getvalue().encode()
