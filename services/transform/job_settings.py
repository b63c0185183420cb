"""What a transform job runs with: the request's values, else the container's, else SageMaker's.

SageMaker's precedence (the developer guide, "How Containers Serve Requests"):
the request's BatchStrategy, MaxPayloadInMB and MaxConcurrentTransforms; for
those it leaves unset, the container's ``GET /execution-parameters`` (setting
``execution_parameters_url``; the local stack names the model server's); else
SageMaker's defaults. DescribeTransformJob shows the request as sent with the
defaults SageMaker shows (:func:`described`); the objects run with
:func:`resolved`'s values, as :class:`ObjectSettings`, and the model sees the
batch variables of :func:`batch_environment`.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from services.transform.requests import CreateTransformJob
from shared.settings import get_settings
from shared.transform import ObjectSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# SageMaker's values when neither the request nor the container chooses.
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_MAX_CONCURRENT = 1
# SageMaker runs a job that sets none of them as MultiRecord (docs/sagemaker-transform.md).
DEFAULT_BATCH_STRATEGY = "MultiRecord"
DEFAULT_INVOCATIONS_TIMEOUT = 600
DEFAULT_INVOCATIONS_RETRIES = 3
# The container's execution parameters name strategies as the batch variables do.
_STRATEGY_NAMES = {"MULTI_RECORD": "MultiRecord", "SINGLE_RECORD": "SingleRecord"}


def execution_parameters() -> dict[str, Any]:
    """The container's GET /execution-parameters, when the stack names one; {} otherwise
    or when it does not answer (SageMaker then uses its defaults too)."""
    url = get_settings().execution_parameters_url
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        log.info("no execution parameters", extra={"url": url})
        return {}
    return answer if isinstance(answer, dict) else {}


def described(request: CreateTransformJob) -> dict[str, Any]:
    """The request as DescribeTransformJob shows it: as sent, with the defaults SageMaker
    shows filled in (the filters, compression, split, assembly and output key), and
    without BatchStrategy, MaxPayloadInMB or MaxConcurrentTransforms when not sent."""
    values = request.model_dump(mode="json", exclude_none=True)
    processing = values.setdefault("DataProcessing", {})
    processing.setdefault("InputFilter", "$")
    processing.setdefault("OutputFilter", "$")
    processing.setdefault("JoinSource", "None")
    values["TransformOutput"].setdefault("KmsKeyId", "")
    return values


def resolved(request: CreateTransformJob) -> dict[str, Any]:
    """The values the job runs with: the request's, else the container's execution
    parameters, else SageMaker's defaults."""
    values = described(request)
    unset = [
        member
        for member in ("BatchStrategy", "MaxPayloadInMB", "MaxConcurrentTransforms")
        if not values.get(member)
    ]
    container = execution_parameters() if unset else {}
    strategy = _STRATEGY_NAMES.get(str(container.get("BatchStrategy")), DEFAULT_BATCH_STRATEGY)
    defaults: dict[str, Any] = {
        "BatchStrategy": strategy,
        "MaxPayloadInMB": _positive(container.get("MaxPayloadInMB"), DEFAULT_MAX_PAYLOAD_MB),
        "MaxConcurrentTransforms": _positive(
            container.get("MaxConcurrentTransforms"), DEFAULT_MAX_CONCURRENT
        ),
    }
    for member in unset:
        # An explicit MaxPayloadInMB of 0 (no limit) is the user's, not unset.
        if member == "MaxPayloadInMB" and request.MaxPayloadInMB == 0:
            continue
        values[member] = defaults[member]
    client = values.setdefault("ModelClientConfig", {})
    client.setdefault("InvocationsTimeoutInSeconds", DEFAULT_INVOCATIONS_TIMEOUT)
    client.setdefault("InvocationsMaxRetries", DEFAULT_INVOCATIONS_RETRIES)
    return values


def _positive(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value > 0 else default


def object_settings(values: dict[str, Any]) -> ObjectSettings:
    """How each object runs, from :func:`resolved`'s values."""
    transform_input = values["TransformInput"]
    output = values["TransformOutput"]
    processing = values["DataProcessing"]
    payload_mb = values["MaxPayloadInMB"]
    return ObjectSettings(
        content_type=transform_input.get("ContentType"),
        compression=transform_input["CompressionType"],
        split_type=transform_input["SplitType"],
        batch_strategy=values["BatchStrategy"],
        max_payload_bytes=payload_mb * MIB if payload_mb else None,
        max_concurrent=values["MaxConcurrentTransforms"],
        accept=output.get("Accept"),
        assemble_with=output["AssembleWith"],
        # "$" is the whole record: no filter.
        input_filter=None if processing["InputFilter"] == "$" else processing["InputFilter"],
        output_filter=None if processing["OutputFilter"] == "$" else processing["OutputFilter"],
        join_source=processing["JoinSource"],
        generate_inference_id=bool(
            values.get("DataCaptureConfig", {}).get("GenerateInferenceId", False)
        ),
        invocations_timeout_seconds=values["ModelClientConfig"]["InvocationsTimeoutInSeconds"],
        invocations_max_retries=values["ModelClientConfig"]["InvocationsMaxRetries"],
    )


def batch_environment(request: CreateTransformJob) -> dict[str, str]:
    """The variables a model sees in Batch Transform: SAGEMAKER_BATCH always, the other
    three only when the request sets them (SageMaker's container contract)."""
    environment = {"SAGEMAKER_BATCH": "true"}
    if request.MaxPayloadInMB is not None:
        environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request.MaxPayloadInMB)
    if request.BatchStrategy is not None:
        environment["SAGEMAKER_BATCH_STRATEGY"] = (
            "MULTI_RECORD" if request.BatchStrategy == "MultiRecord" else "SINGLE_RECORD"
        )
    if request.MaxConcurrentTransforms:
        environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(request.MaxConcurrentTransforms)
    return environment
