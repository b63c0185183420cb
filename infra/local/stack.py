"""The whole local stack: moto server, model server, local Batch, one poller per handler,
the trace receiver and the job dashboard.

The services run with exactly the settings they would get on AWS (``BYOM_*``
names, queue URLs) plus ``AWS_ENDPOINT_URL*`` pointing at the local servers.

The user's own settings (:attr:`StackConfig.user_env`, the environment ``make up``
runs in) pass through, the stack's wiring winning over them
(:mod:`infra.local.stack_settings`).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.local import resources
from infra.local.poller import BUNDLE_PATH_VARIABLE, BUNDLE_PYTHON_VARIABLE
from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.stack_config import (
    DEAD_LETTERS,
    HANDLERS,
    REAPER_HANDLER,
    WORKER_COMMAND,
    WORKER_MODULE,
    StackConfig,
)
from infra.local.stack_readiness import model_ready, port_open
from infra.local.stack_settings import (
    STACK_DEFAULTS,
    WIRING,
    user_settings,
    user_traces_url,
)
from shared.otel_export import ALSO_EXPORT_VARIABLE

REPO = Path(__file__).resolve().parents[2]


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="byom-stack-"))
        self.moto_port = config.moto_port or free_port()
        self.model_port = free_port()
        self.batch_port = free_port()
        self.otlp_port = free_port()
        self.dashboard_port = config.dashboard_port or free_port()
        self.services: dict[str, Service] = {}
        self.resources: resources.Resources | None = None

    @property
    def chosen_settings(self) -> dict[str, str]:
        """The settings chosen for this stack: the user's, and the config's over them."""
        return user_settings(self.config.user_env) | self.config.settings

    @property
    def models_prefix(self) -> str:
        return self.chosen_settings.get("BYOM_MODELS_PREFIX", "models/")

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def traces_url(self) -> str:
        """The trace receiver (infra/local/otlp_receiver.py): OTLP in, spans out."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def spans_path(self) -> Path:
        return self.log_dir / "spans.jsonl"

    def client(self, service: str) -> Any:
        return resources.client(service, self.endpoint_url, self.config.region)

    def base_env(self) -> dict[str, str]:
        """The environment every service runs with: AWS wiring and byom settings.

        In order of precedence: the stack's wiring, ``config.settings``, the user's
        settings, the stack's defaults."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BYOM_", "OTEL_"))}
        env |= STACK_DEFAULTS | self.chosen_settings
        env |= {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.config.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{self.model_port}",
            "AWS_ENDPOINT_URL_BATCH": f"http://127.0.0.1:{self.batch_port}",
            "BYOM_REGION": self.config.region,
            "BYOM_BUCKET": self.config.bucket,
            "BYOM_JOBS_TABLE": self.config.jobs_table,
            "BYOM_EVENT_BUS": self.config.event_bus,
            "BYOM_ENDPOINT_NAME": self.config.endpoint_name,
            "BYOM_BATCH_JOB_DEFINITION": "byom-worker",
            # Every process sends its spans to the local receiver.
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.traces_url,
        }
        env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
        for name in WIRING - env.keys():
            env.pop(name, None)
        # ... and to the user's own collector too, when there is one.
        if (collector := user_traces_url(self.config.user_env)) is not None:
            env[ALSO_EXPORT_VARIABLE] = collector
        if self.resources is not None:
            env["BYOM_SCHEDULER_QUEUE_URL"] = self.resources.queue_urls["scheduler"]
            env["BYOM_STATUS_QUEUE_URL"] = self.resources.queue_urls["status"]
        return env

    def sagemaker_env(self) -> dict[str, str]:
        """What the SageMaker API (served in the moto process) needs beside the rest:
        its table, the ingest queue, and the model server's execution parameters."""
        return {
            "BYOM_SAGEMAKER_TABLE": self.config.sagemaker_table,
            "BYOM_INGEST_QUEUE_URL": resources.queue_url(self.endpoint_url, "ingest"),
            "BYOM_EXECUTION_PARAMETERS_URL": (
                f"http://127.0.0.1:{self.model_port}/execution-parameters"
            ),
        }

    def _service(
        self, name: str, command: list[str], extra: dict[str, str] | None = None
    ) -> Service:
        service = Service(
            name=name,
            command=command,
            env=self.base_env() | (extra or {}),
            log_path=self.log_dir / f"{name}.log",
            cwd=REPO,
        )
        self.services[name] = service
        return service

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def start_aws_only(self) -> LocalStack:
        """Only the local AWS (moto, with byom's SageMaker API) and byom's resources:
        nothing consumes the queues, so a test sees what was sent to them."""
        try:
            self._bootstrap(self._start_moto())
        except BaseException:
            self.stop()
            raise
        return self

    def start_endpoint_only(self) -> LocalStack:
        """The local AWS (as :meth:`start_aws_only`) and the model server, the
        SageMaker endpoint: what a test of the endpoint and its control plane
        (e.g. a scale-to-zero endpoint's copies) needs, without the services."""
        try:
            moto = self._start_moto()
            model = self._start_model_server()
            self._bootstrap(moto)
            self._wait_for_model_server(model)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_moto(self) -> Service:
        moto = self._service(
            "moto",
            [sys.executable, "-m", "infra.local.moto_server", "-H", "127.0.0.1",
             "-p", str(self.moto_port)],
            self.sagemaker_env(),
        )  # fmt: skip
        moto.start()
        return moto

    def _start_model_server(self) -> Service:
        model = self._service(
            "model-server",
            [
                *(self.config.model_server_command or [sys.executable, "-m", "model.server"]),
                "--host", "127.0.0.1",
                "--port", str(self.model_port),
                "--model-dir", str(self.config.model_dir),
            ],
            # A multi-model endpoint's model data: the registry in the bucket, read
            # from the local S3 (AWS_ENDPOINT_URL, in every service's environment).
            {"BYOM_MODEL_DATA_PREFIX": f"s3://{self.config.bucket}/{self.models_prefix}"}
            | self.config.model_server_env,
        )  # fmt: skip
        model.start()
        return model

    def _wait_for_model_server(self, model: Service) -> None:
        wait_until(
            lambda: model.check_alive() and model_ready(self.model_port, self.config.model_dir),
            timeout=60,
            what="model server",
        )

    def _bootstrap(self, moto: Service) -> None:
        wait_until(
            lambda: moto.check_alive() and http_ok(f"{self.endpoint_url}/moto-api/"),
            timeout=30,
            what="moto server",
        )
        self.resources = resources.bootstrap(
            self.endpoint_url,
            self.config.region,
            bucket=self.config.bucket,
            jobs_table=self.config.jobs_table,
            event_bus=self.config.event_bus,
            sagemaker_table=self.config.sagemaker_table,
            input_prefix=self.chosen_settings.get("BYOM_INPUT_PREFIX", "input/"),
            visibility_timeout=self.config.visibility_timeout,
            max_receive_count=self.config.max_receive_count,
        )
        # The SageMaker API was told the ingest queue's URL before the queue existed.
        assert self.resources.queue_urls["ingest"] == self.sagemaker_env()["BYOM_INGEST_QUEUE_URL"]

    def _start(self) -> None:
        python = sys.executable
        # First, so that no process's first spans find nobody to take them.
        receiver = self._service(
            "traces",
            [
                python, "-m", "infra.local.otlp_receiver",
                "--port", str(self.otlp_port),
                "--store", str(self.spans_path),
            ],
        )  # fmt: skip
        receiver.start()
        moto = self._start_moto()
        model = self._start_model_server()
        self._bootstrap(moto)
        assert self.resources is not None
        worker = self.config.worker_command
        # Warm starts fork from this Python; another Python's children are executed.
        preload = ["--preload", WORKER_MODULE] if worker is None else []
        batch = self._service(
            "batch",
            [
                python, "-m", "infra.local.batch_runner",
                "--port", str(self.batch_port),
                "--max-parallel", str(self.config.batch_parallel),
                *preload,
                "--job-definition",
                f"byom-worker={shlex.join(worker) if worker else WORKER_COMMAND}",
            ],
        )  # fmt: skip
        batch.start()
        functions = self._bundle_env()
        for name, function in HANDLERS.items():
            self._service(
                name,
                [
                    python, "-m", "infra.local.poller",
                    "--queue-url", self.resources.queue_urls[name],
                    "--handler", function.handler,
                    "--function-name", f"byom-{name}",
                    "--timeout-seconds", str(function.timeout_seconds),
                    "--batch-size", str(function.batch_size),
                ],
                functions,
            ).start()  # fmt: skip
        dead_letter_queues = [
            arg for url in self.resources.dlq_urls.values() for arg in ("--queue-url", url)
        ]
        self._service(
            "dead-letters",
            [
                python, "-m", "infra.local.poller", *dead_letter_queues,
                "--handler", DEAD_LETTERS.handler,
                "--function-name", "byom-dead-letters",
                "--timeout-seconds", str(DEAD_LETTERS.timeout_seconds),
                "--batch-size", str(DEAD_LETTERS.batch_size),
            ],
            functions,
        ).start()  # fmt: skip
        self._service(
            "reaper",
            [
                python, "-m", "infra.local.timer",
                "--every", str(self.config.reaper_every_seconds),
                "--handler", REAPER_HANDLER,
                "--function-name", "byom-reaper",
            ],
            functions,
        ).start()  # fmt: skip
        dashboard = self._service(
            "dashboard",
            [
                python, "-m", "infra.local.dashboard",
                "--port", str(self.dashboard_port),
                "--traces", self.traces_url,
            ],
        )  # fmt: skip
        dashboard.start()
        wait_until(
            lambda: receiver.check_alive() and http_ok(f"{self.traces_url}/ping"),
            timeout=30,
            what="trace receiver",
        )
        wait_until(
            lambda: dashboard.check_alive() and http_ok(f"{self.dashboard_url}/ping"),
            timeout=30,
            what="job dashboard",
        )
        self._wait_for_model_server(model)
        wait_until(
            lambda: batch.check_alive() and port_open(self.batch_port),
            timeout=30,
            what="local Batch",
        )

    def _bundle_env(self) -> dict[str, str]:
        """What tells a poller to run its function from the bundle (infra/local/poller.py)."""
        bundle = self.config.lambda_bundle
        if bundle is None:
            return {}
        return {
            BUNDLE_PYTHON_VARIABLE: bundle.python,
            BUNDLE_PATH_VARIABLE: os.pathsep.join(bundle.path),
        }

    def subscribe_done_events(self, queue_name: str) -> str:
        return resources.subscribe_done_events(
            self.endpoint_url,
            self.config.region,
            event_bus=self.config.event_bus,
            queue_name=queue_name,
        )

    def check_alive(self) -> None:
        for service in self.services.values():
            service.check_alive()

    def stop(self) -> None:
        """Every service but the local AWS at once, then the local AWS: the pollers,
        the runner and the servers end side by side (a stack's stop took seconds
        one service after another), and none of them loses moto mid-call."""
        services = list(reversed(self.services.values()))
        for service in services:
            if service.name != "moto":
                service.signal_group(signal.SIGTERM)
        for service in services:
            service.stop()

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {name} ---\n{service.tail(lines)}" for name, service in self.services.items()
        )

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
