"""The model server's settings: the only place the server reads the environment.

SageMaker's own variables keep their names (`SM_MODEL_DIR`, `SAGEMAKER_BIND_TO_PORT`);
byom's start with `BYOM_`.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def cpu_count() -> int:
    # The CPUs this process may use (a container's cpuset), not the host's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    # Loopback by default: the fault endpoint below is on whenever the server is
    # only reachable from this machine. The container sets 0.0.0.0.
    host: str = Field(default="127.0.0.1", validation_alias="BYOM_MODEL_SERVER_HOST")
    port: int = Field(default=8080, ge=0, le=65535, validation_alias="SAGEMAKER_BIND_TO_PORT")
    model_dir: Path = Field(default=Path("/opt/ml/model"), validation_alias="SM_MODEL_DIR")
    allow_pickle: bool = Field(default=False, validation_alias="BYOM_ALLOW_PICKLE")
    # A package's code/inference.py (SageMaker inference toolkit functions) and its
    # code/requirements.txt run only with this on (model/inference_script.py).
    allow_model_code: bool = Field(default=False, validation_alias="BYOM_ALLOW_MODEL_CODE")
    sagemaker_program: str | None = Field(default=None, validation_alias="SAGEMAKER_PROGRAM")
    # A model.tar.gz is extracted here (default: a temporary directory), after its
    # members pass these limits (model/package.py).
    package_workdir: Path | None = Field(default=None, validation_alias="BYOM_PACKAGE_WORKDIR")
    package_max_members: int = Field(
        default=10_000, ge=1, validation_alias="BYOM_PACKAGE_MAX_MEMBERS"
    )
    package_max_bytes: int = Field(
        default=20 * 1024**3, ge=1, validation_alias="BYOM_PACKAGE_MAX_BYTES"
    )
    package_max_ratio: float = Field(default=100.0, gt=1, validation_alias="BYOM_PACKAGE_MAX_RATIO")
    # Multi-model hosting, as a SageMaker multi-model endpoint: a request naming a
    # target model (X-Amzn-SageMaker-Target-Model) is served by the package at
    # `<model_data_prefix><target>`, e.g. s3://<bucket>/models/ + fraud/3/model.tar.gz,
    # fetched into `model_cache_dir` on first use; at most `max_models` stay loaded.
    model_data_prefix: str | None = Field(default=None, validation_alias="BYOM_MODEL_DATA_PREFIX")
    model_cache_dir: Path | None = Field(default=None, validation_alias="BYOM_MODEL_CACHE_DIR")
    max_models: int = Field(default=8, ge=1, validation_alias="BYOM_MAX_MODELS")
    # A SageMaker multi-model endpoint (Mode: MultiModel; SageMaker sets
    # SAGEMAKER_MULTI_MODEL=true): no model in model_dir, /ping answers 200 without
    # one, and SageMaker loads models with POST /models (mme_api.py).
    multi_model: bool = Field(
        default=False, validation_alias=AliasChoices("BYOM_MULTI_MODEL", "SAGEMAKER_MULTI_MODEL")
    )
    # Predictions run in a pool of this many threads, one OpenMP thread each.
    threads: int = Field(
        default_factory=cpu_count, ge=1, validation_alias="BYOM_MODEL_SERVER_THREADS"
    )
    # Image requests arriving within this many milliseconds of each other share
    # one model call, up to the package's [image] batch_size (model/server/batching.py).
    image_batch_wait_ms: float = Field(
        default=2.0, ge=0, le=1000, validation_alias="BYOM_IMAGE_BATCH_WAIT_MS"
    )
    # Fault injection for tests of callers' retry logic: the first `fault_count`
    # invocations answer `fault_status` instead of predicting.
    fault_status: int | None = Field(
        default=None, ge=400, le=599, validation_alias="BYOM_FAULT_STATUS"
    )
    fault_count: int = Field(default=0, ge=0, validation_alias="BYOM_FAULT_COUNT")
    # POST /_byom/faults changes the two above at run time. Unset means "on only
    # when bound to a loopback address", so a server reachable from elsewhere
    # cannot be told to fail by anyone who can reach it.
    fault_api: bool | None = Field(default=None, validation_alias="BYOM_FAULT_API")
    # Refuse requests whose Host is not this server's loopback address and port, and
    # cross-origin browser requests (shared/loopback.py), so that no web page the
    # user has open can reach the server. Unset means "on when bound to a loopback
    # address": the local stack's server; the container binds 0.0.0.0, where
    # SageMaker calls it with a Host of its own.
    loopback_only: bool | None = Field(default=None, validation_alias="BYOM_LOOPBACK_ONLY")
    # A scale-to-zero endpoint, emulated (model/server/capacity.py): the inference
    # component the runtime path serves, whether it starts with no copies, when such
    # a cold start ends by itself, how long a copy takes to start after a wake
    # ("inf": never), and how long without an invocation scales it back in to 0.
    inference_component: str = Field(default="", validation_alias="BYOM_INFERENCE_COMPONENT")
    start_cold: bool = Field(default=False, validation_alias="BYOM_START_COLD")
    cold_seconds: float | None = Field(default=None, ge=0, validation_alias="BYOM_COLD_SECONDS")
    wake_seconds: float = Field(default=0.0, ge=0, validation_alias="BYOM_WAKE_SECONDS")
    scale_in_seconds: float | None = Field(
        default=None, gt=0, validation_alias="BYOM_SCALE_IN_SECONDS"
    )
    # Where spans go (model/server/tracing.py): the standard OpenTelemetry variables.
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    @model_validator(mode="after")
    def _faults_need_both(self) -> ServerSettings:
        if self.fault_count and self.fault_status is None:
            raise ValueError("BYOM_FAULT_COUNT needs BYOM_FAULT_STATUS (e.g. 429 or 500)")
        return self

    @property
    def bound_to_loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    @property
    def fault_api_enabled(self) -> bool:
        return self.fault_api if self.fault_api is not None else self.bound_to_loopback

    @property
    def loopback_only_enabled(self) -> bool:
        return self.loopback_only if self.loopback_only is not None else self.bound_to_loopback
