"""CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob.

A transform job is a set of input objects, each run as one byom job: creating
one checks the request, registers the model's package, lists the objects,
stores the job (InProgress) and sends one :class:`TransformObject` per object
to the ingest queue. Status counts the objects' ends on the job's record
(``shared/transform_store.py``) and settles it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.transform import inputs, locations, registration
from services.transform.job_settings import (
    batch_environment,
    described,
    object_settings,
    resolved,
)
from services.transform.listing import page, within
from services.transform.models import model_arn
from services.transform.requests import (
    CreateTransformJob,
    ListTransformJobs,
    TransformJobNamed,
    check_transform_job,
    parse,
)
from services.transform.wording import RequestInvalid, ResourceInUse, ResourceNotFound
from shared import aws
from shared.settings import get_settings
from shared.transform import (
    TransformObject,
    TransformRecord,
    TransformStatus,
    object_job_id,
)
from shared.transform_store import NameTaken, TransformStore, describe

log = logging.getLogger(__name__)


def transform_job_arn(name: str) -> str:
    settings = get_settings()
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:transform-job/{name.lower()}"


def not_found(name: str) -> RequestInvalid:
    """DescribeTransformJob's answer for an unknown name: a ValidationException, as
    SageMaker's (the waiter counts it a failure)."""
    return RequestInvalid(f"Could not find requested job with name {name}")


def create_transform_job(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    request = parse(CreateTransformJob, body)
    check_transform_job(request)
    locations.check_request(request)
    name = request.TransformJobName
    arn = transform_job_arn(name)
    if store.get(name) is not None:
        raise _in_use(arn)
    model = store.get_model(request.ModelName)
    if model is None:
        raise RequestInvalid(f'Could not find model "{model_arn(request.ModelName)}".')
    settings = object_settings(resolved(request))
    s3 = aws.s3()
    container = registration.container_of(model.request)
    environment = (
        dict(container.get("Environment") or {})
        | dict(request.Environment)
        | batch_environment(request)
    )
    # The environment travels inside the registered package (not in the messages:
    # SQS's 256 KB limit), so two jobs with different environments get two targets.
    target = registration.register(s3, model.name, model.request, environment)
    now = datetime.now(UTC)
    record = TransformRecord(
        name=name,
        arn=arn,
        status=TransformStatus.IN_PROGRESS,
        request=described(request),
        model_name=model.name,
        creation_time=now,
        last_modified_time=now,
        transform_start_time=now,
    )
    source = request.TransformInput.DataSource.S3DataSource
    limit = get_settings().max_transform_objects
    try:
        if source.S3DataType == "ManifestFile":
            found = inputs.from_manifest(s3, source.S3Uri, limit)
        else:
            found = inputs.under_prefix(s3, source.S3Uri, limit)
        outputs = [
            inputs.output_key(request.TransformOutput.S3OutputPath, obj.relative) for obj in found
        ]
        locations.check_objects(((obj.bucket, obj.key) for obj in found), outputs)
    except RequestInvalid as exc:
        # As on SageMaker: the job is created, and fails saying what it could not read.
        _create(store, record)
        store.settle(record, reason=f"ClientError: {exc.message}")
        return {"TransformJobArn": arn}
    record = record.model_copy(
        update={
            "objects": len(found),
            "object_jobs": [object_job_id(arn, index) for index in range(len(found))],
        }
    )
    _create(store, record)
    try:
        store.announce(record)
    except Exception:  # the job runs all the same; its end is announced again
        log.exception("InProgress event not sent", extra={"transform_job": name})
    messages = []
    for index, (obj, (output_bucket, output_key)) in enumerate(zip(found, outputs, strict=True)):
        messages.append(
            TransformObject(
                transform_job_name=name,
                transform_job_arn=arn,
                index=index,
                objects=len(found),
                bucket=obj.bucket,
                key=obj.key,
                etag=obj.etag,
                size=obj.size,
                output_bucket=output_bucket,
                output_key=output_key,
                settings=settings,
                target_model=target,
            )
        )
    try:
        _send(messages)
    except Exception:
        # Without its objects the job would never end: it fails now, saying why.
        store.settle(record, reason="InternalServerError: the input objects could not be queued")
        raise
    return {"TransformJobArn": arn}


def _in_use(arn: str) -> ResourceInUse:
    return ResourceInUse(
        "Job name must be unique within an AWS account and region, and a job with this "
        f"name already exists ({arn})"
    )


def _create(store: TransformStore, record: TransformRecord) -> None:
    try:
        store.create(record)
    except NameTaken:
        raise _in_use(record.arn) from None


def _send(messages: list[TransformObject]) -> None:
    """Every object to ingest, ten to a batch; a batch entry refused is an error."""
    queue_url = get_settings().ingest_queue_url
    sqs = aws.sqs()
    for start in range(0, len(messages), 10):
        batch = messages[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(message.index), "MessageBody": message.model_dump_json()}
                for message in batch
            ],
        )
        if response.get("Failed"):
            raise RuntimeError(f"the ingest queue refused transform objects: {response['Failed']}")


def describe_transform_job(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    name = parse(TransformJobNamed, body).TransformJobName
    record = store.get(name)
    if record is None:
        raise not_found(name)
    return describe(record)


_SORT_KEYS = {
    "Name": lambda record: record.name,
    "CreationTime": lambda record: record.creation_time,
    "Status": lambda record: (record.status.value, record.creation_time),
}


def list_transform_jobs(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    request = parse(ListTransformJobs, body)
    records = [
        record
        for record in store.list()
        if (request.NameContains is None or request.NameContains.lower() in record.name.lower())
        and (request.StatusEquals is None or record.status.value == request.StatusEquals)
        and within(record.creation_time, request.CreationTimeAfter, request.CreationTimeBefore)
        and within(
            record.last_modified_time,
            request.LastModifiedTimeAfter,
            request.LastModifiedTimeBefore,
        )
    ]
    chosen, token = page(
        records,
        _SORT_KEYS[request.SortBy],
        descending=request.SortOrder == "Descending",
        max_results=request.MaxResults,
        next_token=request.NextToken,
    )
    answer: dict[str, Any] = {"TransformJobSummaries": [_summary(record) for record in chosen]}
    if token:
        answer["NextToken"] = token
    return answer


def _summary(record: TransformRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TransformJobName": record.name,
        "TransformJobArn": record.arn,
        "CreationTime": record.creation_time,
        "LastModifiedTime": record.last_modified_time,
        "TransformJobStatus": record.status.value,
    }
    if record.transform_end_time is not None:
        summary["TransformEndTime"] = record.transform_end_time
    if record.failure_reason:
        summary["FailureReason"] = record.failure_reason
    return summary


def stop_transform_job(store: TransformStore, body: dict[str, Any]) -> dict[str, Any]:
    """Stopping; every object job not ended yet is cancelled, and the job is Stopped
    when the last one has ended (status counts them as for any end)."""
    name = parse(TransformJobNamed, body).TransformJobName
    record = store.request_stop(name)
    if record is None:
        raise ResourceNotFound(f"Could not find requested job with name {name}")
    if record.status is TransformStatus.STOPPING:
        _cancel_objects(store, record)
    return {}


def _cancel_objects(store: TransformStore, record: TransformRecord) -> None:
    from shared import job_control  # imports the job store: only a stop needs it

    reason = f"transform job {record.name} was stopped"
    for index, job_id in enumerate(record.object_jobs):
        try:
            job_control.cancel(job_id, reason=reason)
        except job_control.JobNotFound:
            # Ingest has not planned this object yet (it plans none of a stopping
            # job): it has ended as far as the transform job is concerned.
            store.object_ended(record.name, index, failed=False)
