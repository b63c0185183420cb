"""AWS client construction: the one place clients are made.

Endpoints are never passed here: boto3 and aiobotocore read ``AWS_ENDPOINT_URL``
and ``AWS_ENDPOINT_URL_<SERVICE>`` from the environment, so the same code reaches
AWS in production and the local stack on a laptop.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from aiobotocore.session import AioSession, get_session
from botocore.config import Config

from shared.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    connect_timeout=5,
    read_timeout=60,
)


def _client(service: str) -> Any:
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        region_name=get_settings().region,
        config=_CONFIG,
    )


@cache
def s3() -> S3Client:
    client: S3Client = _client("s3")
    return client


@cache
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@cache
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@cache
def events() -> EventBridgeClient:
    client: EventBridgeClient = _client("events")
    return client


@cache
def batch() -> BatchClient:
    client: BatchClient = _client("batch")
    return client


@cache
def sagemaker() -> Any:
    # No type stubs for the SageMaker client are in the lock (it is a large package
    # and only the scheduler's two inference-component calls use it).
    return _client("sagemaker")


def if_match(etag: str) -> str:
    """An ETag as S3's If-Match wants it: quoted, as in HTTP (moto insists)."""
    return '"' + etag.strip('"') + '"'


def aio_session() -> AioSession:
    return get_session()
