"""Time one chunk and its endpoint calls, wherever the calls happen.

The scorer starts a timer for the chunk it works on; the endpoint client adds
each call to the timer of the context it runs in (an asyncio task inherits its
creator's context, a thread is handed a copy), so concurrent chunks keep their
own counts without passing a timer through every call.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from shared.schemas import ChunkTimings


@dataclass
class ChunkTimer:
    started: float = field(default_factory=time.monotonic)
    endpoint_calls: int = 0
    endpoint_seconds: float = 0.0
    endpoint_retries: int = 0
    endpoint_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def call(self, seconds: float, retries: int = 0) -> None:
        with self._lock:
            self.endpoint_calls += 1
            self.endpoint_seconds += seconds
            self.endpoint_retries += retries

    def retry(self) -> None:
        with self._lock:
            self.endpoint_retries += 1

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.endpoint_wait_seconds = max(self.endpoint_wait_seconds, seconds)

    def timings(self) -> ChunkTimings:
        with self._lock:
            return ChunkTimings(
                seconds=round(time.monotonic() - self.started, 6),
                endpoint_calls=self.endpoint_calls,
                endpoint_seconds=round(self.endpoint_seconds, 6),
                endpoint_retries=self.endpoint_retries,
                endpoint_wait_seconds=round(self.endpoint_wait_seconds, 6),
            )


_current: ContextVar[ChunkTimer | None] = ContextVar("byom_chunk_timer", default=None)


def start() -> ChunkTimer:
    """A timer for the chunk this context works on, from now."""
    timer = ChunkTimer()
    _current.set(timer)
    return timer


def endpoint_call(seconds: float, retries: int = 0) -> None:
    timer = _current.get()
    if timer is not None:
        timer.call(seconds, retries)


def endpoint_retry() -> None:
    timer = _current.get()
    if timer is not None:
        timer.retry()


def endpoint_waited(seconds: float) -> None:
    """The chunk waited this long for the endpoint's capacity (calls waiting side by
    side overlap: the chunk's wait is the longest, not their sum)."""
    timer = _current.get()
    if timer is not None:
        timer.waited(seconds)


def timings() -> ChunkTimings | None:
    timer = _current.get()
    return timer.timings() if timer is not None else None
