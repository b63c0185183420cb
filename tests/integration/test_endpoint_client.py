"""The worker's endpoint client against the real model server, over a real socket."""

from __future__ import annotations

import asyncio
import sys

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.stack import REPO
from services.inference_worker.endpoint import AdaptiveLimiter, Endpoint
from shared.errors import EndpointUnavailable, ModelError
from tests.integration.helpers import set_model_faults

pytestmark = pytest.mark.integration

ROW = ",".join(["0.5"] * 30).encode() + b"\n"


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    port = free_port()
    service = Service(
        name="model-server",
        command=[
            sys.executable,
            "-m",
            "model.server",
            "--port",
            str(port),
            "--model-dir",
            str(model_dir),
        ],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        log_path=tmp_path_factory.mktemp("model-server") / "server.log",
        cwd=REPO,
    )
    service.start()
    try:
        wait_until(
            lambda: http_ok(f"http://127.0.0.1:{port}/ping"), timeout=60, what="model server"
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


async def with_endpoint(url: str, body, **options):
    session = get_session()
    async with session.create_client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=AioConfig(retries={"total_max_attempts": 1}),
    ) as client:
        endpoint = Endpoint(
            client,
            "byom-model",
            concurrency=options.get("concurrency", 4),
            attempts=options.get("attempts", 4),
            backoff=0.01,
            backoff_max=0.05,
        )
        return await body(endpoint)


def test_model_error_is_not_retried_and_keeps_its_message(server):
    async def body(endpoint):
        with pytest.raises(ModelError, match="30") as caught:
            await endpoint.invoke(b"1,2,3\n", content_type="text/csv", accept="text/csv")
        assert endpoint.retries == 0
        return caught.value

    asyncio.run(with_endpoint(server, body))


def test_throttling_is_retried_and_shrinks_the_limit(server):
    set_model_faults(server, 429, 3)

    async def body(endpoint):
        answer = await endpoint.invoke(ROW * 5, content_type="text/csv", accept="text/csv")
        return answer, endpoint.retries, endpoint.limiter.limit

    answer, retries, limit = asyncio.run(with_endpoint(server, body, concurrency=8))
    assert answer.count(b"\n") == 5
    assert retries == 3
    assert limit < 8


def test_retries_are_bounded(server):
    set_model_faults(server, 500, 100)
    try:

        async def body(endpoint):
            with pytest.raises(EndpointUnavailable, match="failed 3 times"):
                await endpoint.invoke(ROW, content_type="text/csv", accept="text/csv")

        asyncio.run(with_endpoint(server, body, attempts=3))
    finally:
        set_model_faults(server, 500, 0)


def test_limiter_bounds_concurrency_and_recovers():
    async def scenario():
        limiter = AdaptiveLimiter(4)
        running = peak = 0

        async def task():
            nonlocal running, peak
            async with limiter:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(task() for _ in range(20)))
        assert peak == 4
        limiter.throttled()
        limiter.throttled()
        assert limiter.limit == 1
        running = peak = 0
        await asyncio.gather(*(task() for _ in range(5)))
        assert peak == 1
        for _ in range(40):
            limiter.succeeded()
        assert limiter.limit == 4

    asyncio.run(scenario())
