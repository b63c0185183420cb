"""Endpoint calls retry transport errors botocore raises, and never a model error.

A dropped keep-alive surfaces as ``ConnectionClosedError`` from the call, a body
cut off mid-read as ``ResponseStreamingError`` from ``read()``; both are
``HTTPClientError``, neither a ``ClientError``. The client here is a fake
sagemaker-runtime client that fails as scripted, then answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError

from services.inference_worker.endpoint import Endpoint
from shared.errors import EndpointUnavailable, ModelError

AS_CSV = {"content_type": "text/csv", "accept": "text/csv"}

ANSWER = b"0.5\n0.25\n"
URL = "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/byom-model/invocations"


class Body:
    def __init__(self, data: bytes, error: Exception | None = None) -> None:
        self.data, self.error = data, error

    async def read(self) -> bytes:
        if self.error is not None:
            raise self.error
        return self.data


# One scripted outcome per call: raise from the call, or a body that fails to read.
Outcome = Callable[[], dict[str, Any]]


def raises(error: Exception) -> Outcome:
    def outcome() -> dict[str, Any]:
        raise error

    return outcome


def body_fails(error: Exception) -> Outcome:
    return lambda: {"Body": Body(b"", error)}


def answers(data: bytes = ANSWER) -> Outcome:
    return lambda: {"Body": Body(data)}


class FakeRuntime:
    """``invoke_endpoint`` as aiobotocore's client has it, playing ``outcomes`` in order."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[dict[str, Any]] = []

    async def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.outcomes.pop(0)()


def endpoint(client: FakeRuntime, attempts: int = 4) -> Endpoint:
    return Endpoint(
        cast(Any, client), "byom-model", concurrency=2, attempts=attempts, backoff=0, backoff_max=0
    )


def model_error(original_status: int) -> ClientError:
    # SageMaker's shape: a 424 ModelError carrying the container's own status.
    response: Any = {
        "Error": {"Code": "ModelError", "Message": "could not convert string to float"},
        "ResponseMetadata": {"HTTPStatusCode": 424},
        "OriginalStatusCode": original_status,
    }
    return ClientError(response, "InvokeEndpoint")


def test_a_closed_connection_and_a_cut_off_body_are_retried() -> None:
    client = FakeRuntime(
        raises(ConnectionClosedError(endpoint_url=URL)),
        body_fails(ResponseStreamingError(error="IncompleteRead(4 bytes read, 6 more expected)")),
        answers(),
    )
    calls = endpoint(client)
    assert asyncio.run(calls.invoke(b"1,2\n3,4\n", **AS_CSV)) == ANSWER
    assert len(client.calls) == 3 and calls.retries == 2
    assert all(call["Body"] == b"1,2\n3,4\n" for call in client.calls)
    assert calls.limiter._in_flight == 0  # the failed reads gave their slot back


@pytest.mark.parametrize(
    "error",
    [
        ConnectionClosedError(endpoint_url=URL),
        ResponseStreamingError(error="Connection broken: IncompleteRead"),
    ],
    ids=["connection-closed", "response-streaming"],
)
def test_each_transport_error_alone_is_retried(error: Exception) -> None:
    first = body_fails(error) if isinstance(error, ResponseStreamingError) else raises(error)
    client = FakeRuntime(first, answers())
    assert asyncio.run(endpoint(client).invoke(b"1\n", **AS_CSV)) == ANSWER
    assert len(client.calls) == 2


def test_transport_errors_past_the_attempts_name_the_last_one() -> None:
    client = FakeRuntime(*[raises(ConnectionClosedError(endpoint_url=URL))] * 3)
    with pytest.raises(EndpointUnavailable, match=r"failed 3 times.*ConnectionClosedError"):
        asyncio.run(endpoint(client, attempts=3).invoke(b"1\n", **AS_CSV))
    assert len(client.calls) == 3


def test_a_model_error_is_not_retried() -> None:
    client = FakeRuntime(raises(model_error(400)), answers())
    calls = endpoint(client)
    with pytest.raises(ModelError, match="could not convert string to float"):
        asyncio.run(calls.invoke(b"abc\n", **AS_CSV))
    assert len(client.calls) == 1 and calls.retries == 0
