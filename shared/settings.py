"""One settings tree for byom's services (ingest, scheduler, workers, status).

No service reads ``os.environ`` itself: every name, limit and knob comes from
here, with the ``BYOM_`` prefix. The model server has its own tree
(``model/server/settings.py``), since its image carries only the tracer of
``shared/``; the local stack's tooling and the ``byom`` command read the few
variables of their own. AWS endpoints are not settings: boto3 and aiobotocore
read ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` themselves, which is
how the local stack points the same code at local servers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BYOM_", extra="ignore", frozen=True)

    region: str = "us-east-1"

    # Where things live. The CloudFormation template passes exactly these.
    bucket: str = "byom-local"
    input_prefix: str = "input/"
    output_prefix: str = "output/"
    staging_prefix: str = "staging/"
    errors_prefix: str = "errors/"
    # The model registry: models/<name>/<version>/model.tar.gz (shared/model_registry.py).
    models_prefix: str = "models/"
    # The registry model (`name` or `name:version`) for uploads that choose none;
    # empty: the endpoint's own model. A multi-model endpoint has no model of its
    # own, so infra/deploy.sh --multi-model publishes the deployed package and sets it.
    default_model: str = ""
    jobs_table: str = "byom-jobs"
    event_bus: str = "byom-events"
    scheduler_queue_url: str = ""
    status_queue_url: str = ""
    endpoint_name: str = "byom-model"
    batch_job_queue: str = "byom-workers"
    batch_job_definition: str = "byom-worker"

    # The model's input shape: rows must have exactly this many numeric columns.
    feature_count: int = Field(default=30, ge=1)

    # Chunking and requests. A chunk is one unit of work and of completion
    # accounting; a request is one invoke_endpoint call (SageMaker caps a
    # request at 6 MB, so requests are sized in bytes, never in rows).
    chunk_bytes: int = Field(default=8 * MIB, ge=1)
    request_bytes: int = Field(default=2 * MIB, ge=1, le=6_000_000)
    max_line_bytes: int = Field(default=1 * MIB, ge=16)
    # Chunk outputs are joined in groups of this many as soon as a group is done,
    # so the final assembly copies groups server-side (S3 copies parts of 5 MiB
    # and more) instead of downloading every small chunk output.
    output_group_chunks: int = Field(default=16, ge=1)
    max_file_bytes: int = Field(default=10 * 1024 * MIB, ge=1)

    # Bad rows: fail the job at the first one, or skip up to a limit (-1: no limit).
    # An upload can choose for itself with S3 object metadata byom-on-bad-rows and
    # byom-max-bad-rows.
    on_bad_rows: Literal["fail", "skip"] = "fail"
    max_bad_rows: int = Field(default=1000, ge=-1)

    # Compressed uploads (.gz) are inflated into staging first; these stop bombs.
    max_compression_ratio: int = Field(default=100, ge=1)

    # Image and video jobs (shared/media.py): a chunk is at most this many images and
    # bytes; larger images are refused before they are decoded (decompression bombs).
    image_chunk_count: int = Field(default=64, ge=1)
    image_chunk_bytes: int = Field(default=32 * MIB, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_image_bytes: int = Field(default=64 * MIB, ge=1)
    max_manifest_items: int = Field(default=100_000, ge=1)
    image_draw: Literal["none", "jpeg", "png"] = "none"  # per upload: metadata byom-draw
    video_frame_rate: float = Field(default=1.0, ge=0)  # per upload: byom-frame-rate
    max_video_frames: int = Field(default=100_000, ge=1)

    # Array sizing: at most this many children; each takes chunks round-robin.
    max_array_children: int = Field(default=50, ge=1, le=10_000)
    worker_attempts: int = Field(default=3, ge=1, le=10)
    worker_timeout_seconds: int = Field(default=3600, ge=60)

    # The worker's fan-out towards the endpoint.
    invoke_concurrency: int = Field(default=8, ge=1)
    # What the worker sends: float32 rows as .npy (parsed once, here), or the CSV
    # text for endpoints that only read text/csv.
    endpoint_content_type: Literal["application/x-npy", "text/csv"] = "application/x-npy"
    # Chunks one child reads, parses and scores at once; its memory is about this
    # many chunks' bytes, whatever the file's size.
    worker_chunks_in_flight: int = Field(default=2, ge=1, le=16)
    # The child's memory (Batch's MEMORY, the template's WorkerMemoryMiB): image and
    # video work is sized to it (services/inference_worker/media_budget.py).
    worker_memory_mib: int = Field(default=2048, ge=256)
    invoke_attempts: int = Field(default=6, ge=1)
    invoke_backoff_seconds: float = Field(default=0.2, gt=0)
    invoke_backoff_max_seconds: float = Field(default=10.0, gt=0)
    # A scale-to-zero endpoint hosts its model as this inference component: every
    # call names it, and the scheduler wakes it (DesiredCopyCount 1) when a job
    # finds it at zero copies. Empty: the endpoint serves its model directly
    # (always-on and serverless endpoints).
    inference_component: str = ""
    # How long a chunk waits for an endpoint with no capacity (a component still at
    # zero copies, its instances provisioning) before it fails, naming this bound.
    # AWS's provisioning takes minutes; the wait polls with backoff up to
    # endpoint_wait_poll_max_seconds between tries.
    endpoint_wait_seconds: float = Field(default=900, ge=0)
    endpoint_wait_poll_max_seconds: float = Field(default=30.0, gt=0)

    # Tracing export (the standard OpenTelemetry variables, read without the prefix).
    # The traces-specific variable is the full URL; the general one is a base that
    # /v1/traces is appended to. (One field with both as AliasChoices would store
    # either under the first name, hiding which one was set.)
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )

    # Job lifecycle.
    job_deadline_seconds: int = Field(default=6 * 3600, ge=1)
    job_ttl_days: int = Field(default=90, ge=1)

    # Array sizing from the bytes to score: one child per bytes_per_child (a child's
    # start-up, tens of seconds on Batch, is paid once per child), at most as many
    # as the compute environment runs at once (max_vcpus over a child's vCPUs) and
    # max_array_children.
    worker_vcpus: float = Field(default=1.0, gt=0)
    bytes_per_child: int = Field(default=64 * MIB, ge=1)
    # Files at or under this size are scored by the scheduler itself, without Batch.
    inline_max_bytes: int = Field(default=1 * MIB, ge=0)
    # The worker compute environment's MaxVcpus: arrays are sized not to exceed it.
    max_vcpus: int = Field(default=256, ge=1)

    # SageMaker Batch Transform (services/transform/): models and transform jobs live
    # in this table (shared/transform_store.py); each input object of a transform job
    # goes to ingest as a message on its queue.
    sagemaker_table: str = "byom-sagemaker"
    ingest_queue_url: str = ""
    # The account in the ARNs the SageMaker API answers with (the template passes the
    # stack's own; moto's default account locally).
    account_id: str = "123456789012"
    # When set (the local stack: the model server's GET /execution-parameters),
    # CreateTransformJob asks it for BatchStrategy, MaxPayloadInMB and
    # MaxConcurrentTransforms the request leaves unset; otherwise SageMaker's defaults.
    execution_parameters_url: str = ""
    # The source of a transform job's state-change events (on the default bus).
    # SageMaker's own locally; EventBridge keeps "aws." sources to AWS's services,
    # so the template sets one of byom's own.
    transform_event_source: str = "aws.sagemaker"
    # At most this many input objects per transform job: each one is a byom job, and
    # the job's record lists them all (DynamoDB items hold 400 KB).
    max_transform_objects: int = Field(default=5000, ge=1)
    # Comma-separated buckets a transform job may read and write (the template sets
    # the data bucket); empty: any, as locally. Whatever the buckets, the data
    # bucket's input/, staging/ and models/ are refused (services/transform/locations.py).
    transform_buckets: str = ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class BatchChild(BaseSettings):
    """What AWS Batch tells an array child about itself, plus the job it works on.

    Batch sets ``AWS_BATCH_*``; the scheduler passes ``BYOM_JOB_ID``,
    ``BYOM_PLAN_KEY``, ``BYOM_ARRAY_SIZE`` and ``BYOM_TRACE_HEADER`` as container
    overrides.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    aws_batch_job_id: str = "local"
    aws_batch_job_array_index: int = Field(default=0, ge=0)
    aws_batch_job_attempt: int = Field(default=1, ge=1)
    byom_job_id: str
    byom_plan_key: str
    byom_array_size: int = Field(default=1, ge=1)
    byom_trace_header: str | None = None
