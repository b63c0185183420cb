"""`make up`'s entry point as a user runs it: upload with a plain S3 client, then Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from infra.local.processes import free_port, http_ok
from infra.local.resources import client
from infra.local.stack import REPO

pytestmark = pytest.mark.integration


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_serves_uploads_and_stops_on_ctrl_c(model_dir, tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local.up", "--port", str(port),
         "--model-dir", str(model_dir), "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        text = "".join(banner)
        assert f"--endpoint-url http://127.0.0.1:{port}" in text, text

        endpoint = f"http://127.0.0.1:{port}"
        s3 = client("s3", endpoint, "us-east-1")
        dynamodb = client("dynamodb", endpoint, "us-east-1")
        s3.upload_file(str(REPO / "model/sample/sample.csv"), "byom-local", "input/mine.csv")
        s3.put_object(Bucket="byom-local", Key="input/broken.csv", Body=b"1,2,3\n")

        deadline = time.monotonic() + 60
        states: dict[str, dict] = {}
        while time.monotonic() < deadline and len(states) < 2:
            items = dynamodb.scan(TableName="byom-jobs")["Items"]
            states = {
                i["input_key"]["S"]: i
                for i in items
                if i.get("state", {}).get("S") in ("SUCCEEDED", "FAILED")
            }
            time.sleep(0.3)
        assert states["input/mine.csv"]["state"]["S"] == "SUCCEEDED"
        # The banner names the dashboard, the model endpoint and the trace receiver,
        # each once, and all of them answer.
        dashboard = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/", text)
        traces = re.search(r"OTLP/HTTP receiver (http://127\.0\.0\.1:\d+)/v1/traces", text)
        model = re.findall(r"model: +(http://127\.0\.0\.1:\d+) \(the endpoint byom-model\)", text)
        assert dashboard and traces and len(model) == 1, text
        assert text.count("logs:") == 1, text
        assert http_ok(f"{model[0]}/ping")
        with urllib.request.urlopen(f"{dashboard.group(1)}/api/jobs", timeout=5) as response:
            listed = {job["input_key"] for job in json.load(response)}
        assert {"input/mine.csv", "input/broken.csv"} <= listed
        assert http_ok(f"{traces.group(1)}/ping")
        output = s3.get_object(Bucket="byom-local", Key=states["input/mine.csv"]["output_key"]["S"])
        assert output["Body"].read().count(b"\n") == 7
        broken = states["input/broken.csv"]
        assert broken["state"]["S"] == "FAILED"
        assert "input/broken.csv, line 1, column 4" in broken["error"]["S"]
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
    assert not port_open(port), "the local AWS is still listening after Ctrl-C"


def test_up_with_a_refused_package_says_why_and_leaves_nothing_running(tmp_path):
    import tarfile

    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as archive:
        archive.addfile(tarfile.TarInfo("../x"))
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.up", "--port", str(port),
         "--model-dir", str(hostile), "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "byom up: the model server refuses" in result.stderr
    assert "'../x'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not port_open(port)  # the local AWS it had started is stopped
