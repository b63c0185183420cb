"""The dashboard's job list over a real socket: however many tabs poll it, the jobs
table is scanned at most once per cache interval (infra/local/dashboard.py)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from infra.local import dashboard
from infra.local.processes import free_port
from shared.schemas import JobItem

TABS = 30


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """JobStore's ``recent``, counting its table scans."""

    scans = 0

    def recent(self, limit: int) -> list[JobItem]:
        type(self).scans += 1
        return [
            JobItem.model_validate(
                {
                    "job_id": f"job-{type(self).scans}",
                    "state": "RUNNING",
                    "bucket": "b",
                    "input_key": "input/x.csv",
                    "input_etag": "e",
                    "input_size": 1,
                    "output_key": "output/x.csv",
                    "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
                    "deadline_epoch": 0,
                    "expires_at": 0,
                }
            )
        ][:limit]


async def _poll(port: int, rounds: list[float], clock: Clock) -> list[int]:
    """Scans counted after each round of every tab's requests; the clock moves between."""
    app = dashboard.make_app("http://127.0.0.1:1", port)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    counts = []
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> None:
                async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 200, await response.text()

            for advance in rounds:
                clock.now += advance
                paths = ["/fragments/jobs", "/api/jobs", "/"] * (TABS // 3)
                await asyncio.gather(*(get(path) for path in paths))
                counts.append(CountingStore.scans)
    finally:
        await runner.cleanup()
    return counts


def test_every_tab_shares_one_scan_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    CountingStore.scans = 0
    monkeypatch.setattr(dashboard, "JobStore", CountingStore)
    monkeypatch.setattr(dashboard, "now", clock, raising=False)
    age = getattr(dashboard, "JOBS_MAX_AGE_SECONDS", 2.0)
    counts = asyncio.run(_poll(free_port(), [0, age / 2, age / 2, 0, 3 * age], clock))
    # 30 requests at once: one scan; within the interval: none; past it: one more.
    assert counts == [1, 1, 2, 2, 3]


async def _jobs_page(port: int) -> str:
    runner = web.AppRunner(dashboard.make_app("http://127.0.0.1:1", port))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/") as response,
        ):
            return await response.text()
    finally:
        await runner.cleanup()


def test_the_jobs_page_polls_no_faster_than_the_list_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dashboard, "JobStore", CountingStore)
    every = re.search(r'data-refresh-ms="(\d+)"', asyncio.run(_jobs_page(free_port())))
    assert every is not None
    assert int(every.group(1)) >= 1000 * dashboard.JOBS_MAX_AGE_SECONDS
