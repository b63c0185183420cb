"""`make up` keeps the user's own settings: an inference script (BYOM_ALLOW_MODEL_CODE)
on a model of four features (BYOM_FEATURE_COUNT), its spans sent to the user's own
collector (OTEL_EXPORTER_OTLP_ENDPOINT) as well as the stack's receiver, and the
stack's wiring untouched by a stray BYOM_BUCKET or AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from infra.local.processes import Service, free_port, http_ok, wait_until
from infra.local.resources import client
from infra.local.stack import REPO

pytestmark = pytest.mark.integration

SCRIPT = """
    import os

    import lightgbm


    def model_fn(model_dir):
        return lightgbm.Booster(model_file=os.path.join(model_dir, "model.txt"))


    def predict_fn(data, model):
        return model.predict(data)
"""


def script_package(folder: Path):
    """A LightGBM model of four features behind a SageMaker inference script."""
    from tests.unit.test_model_flavors import lightgbm_booster

    booster = lightgbm_booster(2)
    (folder / "code").mkdir(parents=True)
    booster.save_model(str(folder / "model.txt"))
    (folder / "code" / "inference.py").write_text(textwrap.dedent(SCRIPT))
    return booster


@pytest.fixture
def collector(tmp_path):
    """The user's own OTLP collector (here, another copy of the stack's receiver)."""
    port = free_port()
    service = Service(
        name="collector",
        command=[sys.executable, "-m", "infra.local.otlp_receiver", "--port", str(port)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)},
        log_path=tmp_path / "collector.log",
        cwd=REPO,
    )
    service.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: service.check_alive() and http_ok(f"{url}/ping"), timeout=30, what="collector"
        )
        yield url
    finally:
        service.stop()


def spans_of(receiver: str, job_id: str) -> list[dict]:
    with urllib.request.urlopen(f"{receiver}/v1/spans?job_id={job_id}", timeout=5) as answer:
        return list(json.load(answer)["spans"])


def test_up_keeps_the_users_settings_and_its_own_wiring(tmp_path, collector):
    booster = script_package(tmp_path / "model")
    port = free_port()
    env = dict(os.environ) | {
        "BYOM_FEATURE_COUNT": "4",
        "BYOM_ALLOW_MODEL_CODE": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        # Wiring: the stack's own wins.
        "BYOM_BUCKET": "somebody-elses-bucket",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.up", "--port", str(port),
         "--model-dir", str(tmp_path / "model"), "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith(("Ctrl-C stops everything", "byom up:")):
                break
        text = "".join(banner)
        assert "Ctrl-C stops everything" in text, text
        traces = re.search(r"OTLP/HTTP receiver (http://127\.0\.0\.1:\d+)/v1/traces", text)
        assert traces, text

        endpoint = f"http://127.0.0.1:{port}"
        s3 = client("s3", endpoint, "us-east-1")
        dynamodb = client("dynamodb", endpoint, "us-east-1")
        rng = np.random.default_rng(5)
        features = rng.normal(size=(50, 4)).astype(np.float32)
        body = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in features)
        s3.put_object(Bucket="byom-local", Key="input/four.csv", Body=body.encode())

        ended: dict[str, dict] = {}

        def job_ended() -> bool:
            process_alive = process.poll() is None
            assert process_alive, "make up stopped"
            for item in dynamodb.scan(TableName="byom-jobs", ConsistentRead=True)["Items"]:
                if item.get("input_key", {}).get("S") == "input/four.csv" and item.get(
                    "state", {}
                ).get("S") in ("SUCCEEDED", "FAILED"):
                    ended.update(item)
            return bool(ended)

        wait_until(job_ended, timeout=120, what="the job of input/four.csv")
        assert ended["state"]["S"] == "SUCCEEDED", ended
        output = s3.get_object(Bucket="byom-local", Key=ended["output_key"]["S"])
        served = np.array(output["Body"].read().split(), dtype=np.float64)
        np.testing.assert_allclose(served, booster.predict(features), rtol=0, atol=1e-6)

        # The job's spans reach both the stack's receiver and the user's collector.
        job_id = ended["job_id"]["S"]
        wait_until(
            lambda: len(spans_of(traces.group(1), job_id)) > 0, timeout=30, what="the stack spans"
        )
        wait_until(lambda: len(spans_of(collector, job_id)) > 0, timeout=30, what="the user spans")
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
