"""make up keeps the user's settings: what passes through, what the stack's wiring overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.local.stack import REPO, LocalStack
from infra.local.stack_config import StackConfig
from shared.otel_export import ALSO_EXPORT_VARIABLE

USER = {
    # Settings a user is told to set: they pass through.
    "BYOM_FEATURE_COUNT": "5",
    "BYOM_ALLOW_MODEL_CODE": "true",
    "BYOM_ALLOW_PICKLE": "true",
    "BYOM_MAX_IMAGE_PIXELS": "1000000",
    "BYOM_MAX_VCPUS": "3",  # over the stack's own default
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.example:4318",
    "OTEL_RESOURCE_ATTRIBUTES": "team=fraud",
    # Wiring: the stack's own values win.
    "BYOM_BUCKET": "somebody-elses-bucket",
    "BYOM_JOBS_TABLE": "elsewhere",
    "BYOM_SCHEDULER_QUEUE_URL": "https://sqs.example/elsewhere",
    "BYOM_MODEL_DATA_PREFIX": "s3://elsewhere/",
    "BYOM_LOOPBACK_ONLY": "false",
    "BYOM_BATCH_JOB_DEFINITION": "other",
    ALSO_EXPORT_VARIABLE: "http://planted.example/v1/traces",
    "AWS_ENDPOINT_URL": "https://s3.amazonaws.com",
    "AWS_ENDPOINT_URL_BATCH": "http://elsewhere",
    "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
    "AWS_SECRET_ACCESS_KEY": "real-secret",
    "AWS_SESSION_TOKEN": "real-token",
    "AWS_PROFILE": "production",
}


def stack(tmp_path: Path, **config: object) -> LocalStack:
    return LocalStack(StackConfig(model_dir=tmp_path, log_dir=tmp_path, **config))  # type: ignore[arg-type]


def test_the_users_settings_pass_through_and_the_wiring_is_the_stacks(tmp_path):
    local = stack(tmp_path, user_env=USER)
    env = local.base_env()
    passed = ("BYOM_FEATURE_COUNT", "BYOM_ALLOW_MODEL_CODE", "BYOM_ALLOW_PICKLE",
              "BYOM_MAX_IMAGE_PIXELS", "BYOM_MAX_VCPUS", "OTEL_RESOURCE_ATTRIBUTES")  # fmt: skip
    for name in passed:
        assert env[name] == USER[name], name
    assert env["BYOM_BUCKET"] == "byom-local"
    assert env["BYOM_JOBS_TABLE"] == "byom-jobs"
    assert env["BYOM_BATCH_JOB_DEFINITION"] == "byom-worker"
    for name in ("BYOM_SCHEDULER_QUEUE_URL", "BYOM_MODEL_DATA_PREFIX", "BYOM_LOOPBACK_ONLY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE"):  # fmt: skip
        assert name not in env, name
    assert env["AWS_ENDPOINT_URL"] == local.endpoint_url
    assert env["AWS_ENDPOINT_URL_BATCH"] == f"http://127.0.0.1:{local.batch_port}"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("test", "test")
    # Spans: the stack's receiver, and the user's collector besides.
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == local.traces_url
    assert env[ALSO_EXPORT_VARIABLE] == "http://collector.example:4318/v1/traces"


def test_the_configs_settings_win_over_the_users(tmp_path):
    env = stack(tmp_path, user_env=USER, settings={"BYOM_FEATURE_COUNT": "7"}).base_env()
    assert env["BYOM_FEATURE_COUNT"] == "7"


def test_a_traces_specific_endpoint_is_used_as_given(tmp_path):
    user = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector.example:4318/custom"}
    local = stack(tmp_path, user_env=user)
    env = local.base_env()
    assert env[ALSO_EXPORT_VARIABLE] == "http://collector.example:4318/custom"
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in env
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == local.traces_url


def test_without_user_settings_the_stack_is_as_before(tmp_path):
    env = stack(tmp_path).base_env()
    assert ALSO_EXPORT_VARIABLE not in env
    assert "BYOM_FEATURE_COUNT" not in env


def test_up_help_lists_what_can_be_set():
    shown = subprocess.run(
        [sys.executable, "-m", "infra.local.up", "--help"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    listed = ("BYOM_FEATURE_COUNT", "BYOM_ALLOW_MODEL_CODE", "BYOM_ALLOW_PICKLE",
              "BYOM_MAX_IMAGE_PIXELS", "OTEL_EXPORTER_OTLP_ENDPOINT")  # fmt: skip
    for name in listed:
        assert f"\n  {name} " in shown, name
    for name in (
        "BYOM_BUCKET",
        "BYOM_JOBS_TABLE",
        "BYOM_LOOPBACK_ONLY",
        "BYOM_SCHEDULER_QUEUE_URL",
    ):
        assert f"\n  {name} " not in shown, name
