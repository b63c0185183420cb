"""Each request's answer must hold one prediction per row of that request.

A model that answers 99 + 101 lines for two requests of 100 rows has the right
total, yet every row of the second request would get its neighbour's prediction.
The fake endpoint here answers as scripted, per request, in the order sent.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, cast

import numpy as np
import pytest

from services.inference_worker.endpoint import Endpoint
from services.inference_worker.main import _failure
from services.inference_worker.scoring import CSV, NPY, npy_requests, predict
from shared.chunk_output import checked_answers
from shared.errors import ModelError, PredictionCountError


class ScriptedEndpoint:
    """Answers each request with ``lines(rows)`` prediction lines."""

    def __init__(self, shift: int) -> None:
        self.shift = shift
        self.calls = 0

    async def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        rows = len(np.load(io.BytesIO(body))) if content_type == NPY else body.count(b"\n")
        self.calls += 1
        # The first request loses `shift` lines, the second gains them.
        answered = rows - self.shift if self.calls == 1 else rows + self.shift
        return b"0.5\n" * answered


def _predict(shift: int, content_type: str) -> bytes:
    values = np.zeros((200, 3), dtype=np.float32)
    if content_type == NPY:
        bodies = npy_requests(values, 10_000_000, max_rows=100)
    else:
        bodies = [b"0,0,0\n" * 100, b"0,0,0\n" * 100]
    endpoint = cast(Endpoint, ScriptedEndpoint(shift))
    return asyncio.run(predict(endpoint, bodies, content_type, 200))


@pytest.mark.parametrize("content_type", [NPY, CSV])
def test_answers_shifted_between_requests_fail_the_chunk_as_a_model_error(
    content_type: str,
) -> None:
    assert _predict(0, content_type) == b"0.5\n" * 200
    with pytest.raises(PredictionCountError) as raised:
        _predict(1, content_type)
    assert "returned 99 predictions for a request of 100 rows (request 1 of 2)" in str(raised.value)
    failure = _failure(raised.value)
    assert failure.kind == "model"  # reported at once, not retried by Batch


def test_the_shared_check_names_the_request_that_is_off() -> None:
    answers: list[Any] = [b"1\n2\n", b"3", b"4\n5\n6\n"]
    assert checked_answers(answers, [2, 1, 3]) == b"1\n2\n3\n4\n5\n6\n"
    with pytest.raises(ModelError, match=r"returned 3 predictions .* of 2 rows \(request 3 of 3\)"):
        checked_answers(answers, [2, 1, 2])


def test_the_small_file_path_checks_each_request_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.scheduler import inline
    from shared.settings import get_settings

    calls: list[int] = []

    def answer(
        runtime: object, endpoint: str, body: bytes, target: str | None = None, component: str = ""
    ) -> bytes:
        calls.append(1)
        rows = body.count(b"\n")
        return b"0.5\n" * (rows - 1 if len(calls) == 1 else rows + 1)

    monkeypatch.setattr(inline, "_invoke", answer)
    monkeypatch.setattr(inline, "_runtime", lambda region: None)
    payload = b"0,0,0\n" * 200
    monkeypatch.setattr(
        inline, "requests_of", lambda data, size, rows=None: [payload[:600], payload[600:]]
    )
    with pytest.raises(PredictionCountError, match=r"request 1 of 2"):
        inline.predict(payload, 200, get_settings())
