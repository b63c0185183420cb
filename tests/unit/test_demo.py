"""make demo runs the stack as make up does: with the user's own settings."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.local import demo
from infra.local.stack_config import StackConfig


class Started(Exception):
    """Raised by the stand-in stack: what demo asked for is all the test needs."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__("started")
        self.config = config


class RecordingStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def __enter__(self) -> Any:
        raise Started(self.config)

    def __exit__(self, *exc: object) -> None:
        return None


def test_demo_starts_the_stack_with_the_users_settings(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(demo, "LocalStack", RecordingStack)
    monkeypatch.setattr(signal, "signal", lambda *_args: None)  # pytest keeps its SIGTERM
    monkeypatch.setattr(sys, "argv", ["demo", "--model-dir", str(tmp_path)])
    monkeypatch.setenv("BYOM_FEATURE_COUNT", "12")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.example:4318")
    with pytest.raises(Started) as started:
        demo.main()
    config = started.value.config
    assert config.model_dir == tmp_path
    assert config.user_env["BYOM_FEATURE_COUNT"] == "12"
    assert config.user_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.example:4318"
