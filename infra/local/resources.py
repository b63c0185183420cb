"""Create byom's AWS resources on the local moto server, named as the template names them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from shared.schemas import DONE_EVENT_PATTERN

QUEUES = ("ingest", "scheduler", "status")
ACCOUNT = "123456789012"  # moto's default account


@dataclass(frozen=True)
class Resources:
    bucket: str
    jobs_table: str
    event_bus: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    sagemaker_table: str = "byom-sagemaker"


def queue_url(endpoint_url: str, name: str, prefix: str = "byom") -> str:
    """The URL moto gives byom's queue ``name`` (``ingest``...), known before it exists:
    the moto process itself is told the ingest queue's URL when it starts."""
    return f"{endpoint_url}/{ACCOUNT}/{prefix}-{name}"


def client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def _route(
    events: Any, rule: str, pattern: dict[str, Any], target_arn: str, *, bus: str = "default"
) -> None:
    """An EventBridge rule that sends what matches ``pattern`` to one target."""
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "1", "Arn": target_arn}])


def bootstrap(
    endpoint_url: str,
    region: str,
    *,
    bucket: str,
    jobs_table: str,
    event_bus: str,
    sagemaker_table: str | None = None,  # default: <prefix>-sagemaker
    input_prefix: str = "input/",
    batch_job_queue: str = "byom-workers",
    prefix: str = "byom",
    visibility_timeout: int = 60,
    max_receive_count: int = 5,
    # As the template's dead-letter queues: six times the 60 s timeout of the
    # function that drains them, so a message is never handled twice at once.
    dead_letter_visibility_timeout: int = 360,
) -> Resources:
    s3 = client("s3", endpoint_url, region)
    sqs = client("sqs", endpoint_url, region)
    events = client("events", endpoint_url, region)
    dynamodb = client("dynamodb", endpoint_url, region)

    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    queue_urls: dict[str, str] = {}
    dlq_urls: dict[str, str] = {}
    for name in QUEUES:
        dlq_url = sqs.create_queue(
            QueueName=f"{prefix}-{name}-dlq",
            Attributes={"VisibilityTimeout": str(dead_letter_visibility_timeout)},
        )["QueueUrl"]
        redrive = {
            "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
            "maxReceiveCount": max_receive_count,
        }
        queue_urls[name] = sqs.create_queue(
            QueueName=f"{prefix}-{name}",
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        dlq_urls[name] = dlq_url

    events.create_event_bus(Name=event_bus)
    _route(
        events,
        f"{prefix}-uploads",
        {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {
                "bucket": {"name": [bucket]},
                "object": {"key": [{"prefix": input_prefix}]},
            },
        },
        _queue_arn(sqs, queue_urls["ingest"]),
    )
    _route(
        events,
        f"{prefix}-batch-failures",
        {
            "source": ["aws.batch"],
            "detail-type": ["Batch Job State Change"],
            "detail": {
                "status": ["FAILED"],
                "jobQueue": [f"arn:aws:batch:{region}:{ACCOUNT}:job-queue/{batch_job_queue}"],
            },
        },
        _queue_arn(sqs, queue_urls["status"]),
    )

    dynamodb.create_table(
        TableName=jobs_table,
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # SageMaker's models and transform jobs (shared/transform_store.py), named after
    # the prefix like the queues, so stacks of other prefixes share a server apart.
    sagemaker_table = sagemaker_table or f"{prefix}-sagemaker"
    dynamodb.create_table(
        TableName=sagemaker_table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return Resources(bucket, jobs_table, event_bus, queue_urls, dlq_urls, sagemaker_table)


def subscribe_done_events(
    endpoint_url: str, region: str, *, event_bus: str, queue_name: str
) -> str:
    """A queue that receives every done event, as a subscriber would set it up."""
    sqs = client("sqs", endpoint_url, region)
    events = client("events", endpoint_url, region)
    queue_url: str = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    _route(
        events,
        f"{queue_name}-rule",
        DONE_EVENT_PATTERN,
        _queue_arn(sqs, queue_url),
        bus=event_bus,
    )
    return queue_url
