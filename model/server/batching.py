"""Dynamic batching: image requests from concurrent calls share one model call.

Each worker sends a few images per request, many requests at once; run one by
one they would leave a GPU mostly idle between small batches. Requests wait in
one asyncio queue per model; when a model call may start, the gatherer takes the
first, adds whatever else arrives within `max_wait` seconds up to `max_images`,
runs the model once on the lot (in the prediction pool, off the event loop) and
hands each caller its own slice of the results. Two calls may run at once, so
the next batch is ready when the device finishes one; while both run, requests
queue up and the next batch comes out fuller.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RUNNERS = 2


@dataclass
class _Request:
    run: Callable[[np.ndarray], list[Any]]
    images: np.ndarray
    answer: asyncio.Future[tuple[list[Any], int]]


@dataclass
class Batcher:
    executor: Executor
    max_images: int
    max_wait: float
    batches: int = 0  # model calls made, for logs and tests
    _queue: asyncio.Queue[_Request] = field(default_factory=asyncio.Queue)
    _gatherer: asyncio.Task[None] | None = None
    _running: set[asyncio.Task[None]] = field(default_factory=set)  # model calls in flight

    async def submit(
        self, run: Callable[[np.ndarray], list[Any]], images: np.ndarray
    ) -> tuple[list[Any], int]:
        """`run(images)`, batched with other callers' images: one result per image, and
        the number of images in the model call they were part of."""
        if self._gatherer is None:
            self._gatherer = asyncio.create_task(self._serve())
        answer: asyncio.Future[tuple[list[Any], int]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(run, images, answer))
        return await answer

    async def _serve(self) -> None:
        """Gather a batch whenever a model call may start: while both are busy,
        requests wait in the queue and the next batch comes out fuller."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(RUNNERS)
        held: _Request | None = None  # the request that would have overflowed the last batch
        while True:
            await slots.acquire()
            batch = [held if held is not None else await self._queue.get()]
            held = None
            count = len(batch[0].images)
            deadline = loop.time() + self.max_wait
            while count < self.max_images:
                try:
                    waiting = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        waiting = await asyncio.wait_for(self._queue.get(), left)
                    except TimeoutError:
                        break
                if count + len(waiting.images) > self.max_images:
                    held = waiting  # it leads the next batch
                    break
                batch.append(waiting)
                count += len(waiting.images)
            task = asyncio.create_task(self._run(loop, batch))
            task.add_done_callback(lambda _: slots.release())
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
        try:
            results = await loop.run_in_executor(self.executor, batch[0].run, images)
        except Exception as exc:
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for request in batch:
            end = start + len(request.images)
            if not request.answer.done():  # a caller that went away needs nothing
                request.answer.set_result((results[start:end], len(images)))
            start = end

    def close(self) -> None:
        if self._gatherer is not None:
            self._gatherer.cancel()


class Batchers:
    """One batcher per loaded model; a model unloaded from the cache takes its own along."""

    def __init__(self, executor: Executor, max_wait: float) -> None:
        self.executor = executor
        self.max_wait = max_wait
        self._by_model: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()

    def of(self, model: Any, max_images: int) -> Batcher:
        batcher = self._by_model.get(model)
        if batcher is None:
            batcher = Batcher(self.executor, max_images, self.max_wait)
            self._by_model[model] = batcher
            weakref.finalize(model, batcher.close)
        return batcher
