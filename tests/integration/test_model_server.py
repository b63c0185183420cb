"""The model server as a real process, driven by the real SageMaker runtime clients."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
import xgboost
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from model.data import FEATURES, generate
from model.train import train
from tests.features import write_feature_csv
from tests.integration.helpers import with_cell

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, headers, body) of one request, errors included."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


class Server:
    """`python -m model.server` on a free port, stopped by its own PID.

    SageMaker style starts it as a container is started (`serve`, settings in the
    environment); otherwise the settings are flags.
    """

    def __init__(
        self,
        log_path: Path,
        model_dir: Path,
        *,
        sagemaker_style: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("BYOM_", "SM_", "SAGEMAKER_"))
        }
        if sagemaker_style:
            args = ["serve"]
            environment |= {
                "SAGEMAKER_BIND_TO_PORT": str(self.port),
                "SM_MODEL_DIR": str(model_dir),
            }
        else:
            args = ["--host", "127.0.0.1", "--port", str(self.port), "--model-dir", str(model_dir)]
        environment |= env or {}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model.server", *args],
                cwd=REPO,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"model server exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"model server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def client(self, config: Config = NO_RETRIES):
        return boto3.client(
            "sagemaker-runtime",
            endpoint_url=self.url,
            region_name="us-east-1",
            config=config,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def set_faults(self, status: int, count: int) -> None:
        document = json.dumps({"status": status, "count": count}).encode()
        answer = http(f"{self.url}/_byom/faults", document, {"Content-Type": "application/json"})
        assert answer[0] == 200, answer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    frame = generate(3000, seed=5, fraud_rate=0.05)
    booster = train(frame, rounds=10, seed=5)
    model_dir = tmp_path_factory.mktemp("tiny-model")
    booster.save_model(str(model_dir / "xgboost-model.json"))
    return model_dir, booster


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("server") / "server.log", tiny_model[0])
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


@pytest.fixture
def client(server):
    client = server.client()
    try:
        yield client
    finally:
        client.close()


def csv_rows(rows: int, seed: int) -> bytes:
    buffer = io.StringIO()
    write_feature_csv(generate(rows, seed=seed, fraud_rate=0.05), buffer)
    return buffer.getvalue().encode()


def expected(booster: xgboost.Booster, body: bytes) -> np.ndarray:
    rows = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float32).to_numpy()
    return booster.predict(xgboost.DMatrix(rows, feature_names=list(FEATURES)))


def test_ping_and_execution_parameters(server):
    status, _, body = http(f"{server.url}/ping")
    assert (status, body) == (200, b"")
    status, _, body = http(f"{server.url}/execution-parameters")
    assert status == 200 and json.loads(body)["MaxPayloadInMB"] == 6
    assert "xgboost-model.json (30 features)" in server.log()


def test_csv_through_boto3_matches_xgboost(client, tiny_model):
    booster = tiny_model[1]
    body = csv_rows(500, seed=8)
    response = client.invoke_endpoint(
        EndpointName="byom-model", ContentType="text/csv", Accept="text/csv", Body=body
    )
    assert response["ContentType"] == "text/csv"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    answer = response["Body"].read()
    assert answer.endswith(b"\n") and answer.count(b"\n") == 500
    scores = np.array(answer.decode().splitlines(), dtype=np.float64)
    np.testing.assert_allclose(scores, expected(booster, body), rtol=0, atol=1e-6)
    # CRLF endings and a missing final newline change nothing
    crlf = body.replace(b"\n", b"\r\n").removesuffix(b"\r\n")
    again = client.invoke_endpoint(EndpointName="byom-model", ContentType="text/csv", Body=crlf)
    assert again["Body"].read() == answer


def test_container_path_speaks_csv_and_json(server, tiny_model):
    booster = tiny_model[1]
    body = csv_rows(20, seed=9)
    want = expected(booster, body)
    instances = pd.read_csv(io.BytesIO(body), header=None).to_numpy().tolist()
    status, headers, answer = http(
        f"{server.url}/invocations", body, {"Content-Type": "text/csv; charset=utf-8"}
    )
    assert status == 200 and headers["Content-Type"] == "text/csv"
    np.testing.assert_allclose(np.array(answer.split(), dtype=np.float64), want, atol=1e-6)
    for document in ({"instances": instances}, instances):
        status, headers, answer = http(
            f"{server.url}/invocations",
            json.dumps(document).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200 and headers["Content-Type"] == "application/json"
        np.testing.assert_allclose(json.loads(answer)["predictions"], want, atol=1e-6)
    status, headers, answer = http(
        f"{server.url}/invocations",
        json.dumps({"instances": instances}).encode(),
        {"Content-Type": "application/json", "Accept": "text/csv"},
    )
    assert status == 200 and answer.count(b"\n") == 20


def test_npy_in_csv_or_npy_out(client, tiny_model):
    """What byom's workers send: float32 rows parsed once, as .npy; never unpickled."""
    body = csv_rows(300, seed=11)
    rows = pd.read_csv(io.BytesIO(body), header=None).to_numpy(dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, rows, allow_pickle=False)
    want = expected(tiny_model[1], body)
    answer = client.invoke_endpoint(
        EndpointName="byom-model",
        ContentType="application/x-npy",
        Accept="text/csv",
        Body=buffer.getvalue(),
    )["Body"].read()
    assert answer.count(b"\n") == 300
    np.testing.assert_allclose(np.array(answer.split(), dtype=np.float64), want, atol=1e-6)
    as_npy = client.invoke_endpoint(
        EndpointName="byom-model",
        ContentType="application/x-npy",
        Accept="application/x-npy",
        Body=buffer.getvalue(),
    )["Body"].read()
    np.testing.assert_allclose(np.load(io.BytesIO(as_npy), allow_pickle=False), want, atol=1e-6)
    objects = io.BytesIO()
    np.save(objects, np.array([[1, "x"]], dtype=object), allow_pickle=True)
    with pytest.raises(client.exceptions.ModelError, match=r"not a \.npy array"):
        client.invoke_endpoint(
            EndpointName="byom-model", ContentType="application/x-npy", Body=objects.getvalue()
        )


def test_json_through_boto3(client, tiny_model):
    body = csv_rows(10, seed=10)
    instances = pd.read_csv(io.BytesIO(body), header=None).to_numpy().tolist()
    response = client.invoke_endpoint(
        EndpointName="byom-model",
        ContentType="application/json",
        Body=json.dumps({"instances": instances}),
    )
    predictions = json.loads(response["Body"].read())["predictions"]
    np.testing.assert_allclose(predictions, expected(tiny_model[1], body), atol=1e-6)


def test_fifty_concurrent_aiobotocore_calls(server, tiny_model):
    booster = tiny_model[1]
    bodies = [csv_rows(200, seed=100 + i) for i in range(50)]

    async def call_all() -> list[bytes]:
        session = get_session()
        async with session.create_client(
            "sagemaker-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            config=AioConfig(max_pool_connections=50, retries={"total_max_attempts": 1}),
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ) as client:

            async def one(body: bytes) -> bytes:
                response = await client.invoke_endpoint(
                    EndpointName="byom-model", ContentType="text/csv", Body=body
                )
                async with response["Body"] as stream:
                    data: bytes = await stream.read()
                    return data

            return await asyncio.gather(*(one(body) for body in bodies))

    answers = asyncio.run(call_all())
    for body, answer in zip(bodies, answers, strict=True):
        scores = np.array(answer.split(), dtype=np.float64)
        np.testing.assert_allclose(scores, expected(booster, body), rtol=0, atol=1e-6)


BAD_CSV = {
    "too few columns": (b"1,2,3\n", "line 1: expected 30 columns, found 3"),
    "ragged": (
        with_cell(csv_rows(5, 1), 3, 30, b"7.5,0.5"),
        "line 3: expected 30 columns, found 31",
    ),
    "blank line": (csv_rows(5, 1).replace(b"\n", b"\n\n", 1), "line 2 is empty"),
    "non-numeric": (
        with_cell(csv_rows(4, 2), 3, 4, b"abc"),
        "line 3, column 4: 'abc' is not a number",
    ),
    "empty cell": (with_cell(csv_rows(4, 2), 2, 30, b""), "line 2, column 30: '' is not a number"),
    "infinite": (
        with_cell(csv_rows(4, 2), 4, 1, b"inf"),
        "line 4, column 1: 'inf' is not a finite",
    ),
    "beyond float32": (
        with_cell(csv_rows(4, 2), 2, 5, b"1e39"),
        "line 2, column 5: '1e39' is beyond the float32 range",
    ),
    "header": (",".join(FEATURES).encode() + b"\n" + csv_rows(2, 3), "line 1, column 1: 'Time'"),
}


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_raises_model_error_with_the_reason(client, case):
    body, reason = BAD_CSV[case]
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName="byom-model", ContentType="text/csv", Body=body)
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert reason in error["OriginalMessage"] and reason in str(caught.value)
    assert "Received client error (400) from primary" in error["Error"]["Message"]


@pytest.mark.parametrize(
    ("content_type", "body", "headers", "status", "reason"),
    [
        ("text/csv", b"", {}, 400, "the request body is empty"),
        ("text/csv", b" \n", {}, 400, "the request body is empty"),
        ("application/json", b"[[1, 2]", {}, 400, "not valid JSON"),
        ("application/json", b'{"rows": []}', {}, 400, "instances"),
        ("application/json", b"[[1, 2], [3]]", {}, 400, "equal length"),
        ("application/json", json.dumps([[0.5] * 29]).encode(), {}, 400, "expected 30 features"),
        ("application/x-npy", b"\x93NUMPY", {}, 400, "not a .npy array"),
        ("application/x-protobuf", b"\x00", {}, 415, "cannot read 'application/x-protobuf'"),
        ("text/csv", b"1\n", {"Accept": "application/x-protobuf"}, 406, "cannot answer"),
    ],
)
def test_container_path_errors_are_json(server, content_type, body, headers, status, reason):
    answer = http(f"{server.url}/invocations", body, {"Content-Type": content_type, **headers})
    assert answer[0] == status
    assert answer[1]["Content-Type"].startswith("application/json")
    assert reason in json.loads(answer[2])["error"]


def test_body_over_six_mib_is_refused_with_413(client, server):
    line = b"0," * 29 + b"0\n"
    for size in (6 * MIB + 1, 8 * MIB):
        body = line * (size // len(line) + 1)
        with pytest.raises(ClientError) as caught:
            client.invoke_endpoint(EndpointName="byom-model", ContentType="text/csv", Body=body)
        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
        assert error["Error"]["Code"] == "ValidationError"
        assert "the limit is 6291456 bytes" in error["Error"]["Message"]
    # exactly at the limit is fine
    body = line * (6 * MIB // len(line))
    response = client.invoke_endpoint(EndpointName="byom-model", ContentType="text/csv", Body=body)
    assert response["Body"].read().count(b"\n") == 6 * MIB // len(line)
    assert http(f"{server.url}/invocations", line * (6 * MIB // len(line) + 1))[0] == 413


def test_unloadable_model_keeps_serving_and_says_why(tmp_path, tiny_model):
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    data = (tiny_model[0] / "xgboost-model.json").read_bytes()
    (model_dir / "xgboost-model.json").write_bytes(data[:1000])
    server = Server(
        tmp_path / "server.log", model_dir, sagemaker_style=True, env={"BYOM_FAULT_API": "false"}
    )
    try:
        status, headers, body = http(f"{server.url}/ping")
        assert status == 500 and headers["Content-Type"].startswith("application/json")
        reason = json.loads(body)["error"]
        assert f"{model_dir / 'xgboost-model.json'}: not valid JSON" in reason

        status, _, body = http(f"{server.url}/invocations", b"1\n", {"Content-Type": "text/csv"})
        assert status == 500 and "the model is not loaded" in json.loads(body)["error"]
        client = server.client()
        try:
            with pytest.raises(client.exceptions.ModelError) as caught:
                client.invoke_endpoint(EndpointName="e", ContentType="text/csv", Body=b"1\n")
        finally:
            client.close()
        assert caught.value.response["OriginalStatusCode"] == 500
        assert "not valid JSON" in str(caught.value)
        # turned off explicitly here, so nobody can inject faults
        assert http(f"{server.url}/_byom/faults", b"{}")[0] == 404
    finally:
        assert server.stop() == 0
    assert "WITHOUT a model" in server.log() and "stopping" in server.log()


def test_pickled_model_is_refused_by_the_server(tmp_path):
    model_dir = tmp_path / "pickled"
    model_dir.mkdir()
    (model_dir / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    server = Server(tmp_path / "server.log", model_dir)
    try:
        status, _, body = http(f"{server.url}/ping")
        assert status == 500
        assert (
            "model.pkl: refusing to load a file that may be a pickle" in json.loads(body)["error"]
        )
    finally:
        server.stop()


def test_injected_faults_reach_the_client_as_sagemaker_errors(tmp_path, tiny_model):
    server = Server(
        tmp_path / "server.log",
        tiny_model[0],
        sagemaker_style=True,
        env={"BYOM_FAULT_STATUS": "429", "BYOM_FAULT_COUNT": "2"},
    )
    body = csv_rows(3, seed=4)
    client = server.client()
    retrying = server.client(Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    try:

        def invoke(on=client):
            return on.invoke_endpoint(EndpointName="byom-model", ContentType="text/csv", Body=body)

        for _ in range(2):
            with pytest.raises(ClientError) as caught:
                invoke()
            error = caught.value.response
            assert error["Error"]["Code"] == "ThrottlingException"
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert invoke()["Body"].read().count(b"\n") == 3

        for status, code in ((500, "InternalFailure"), (503, "ServiceUnavailable")):
            server.set_faults(status, 1)
            with pytest.raises(ClientError) as caught:
                invoke()
            assert caught.value.response["Error"]["Code"] == code
            assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
            assert invoke()["Body"].read().count(b"\n") == 3

        # botocore recognises them as retryable: its own retries get through
        server.set_faults(429, 2)
        response = invoke(retrying)
        assert response["ResponseMetadata"]["RetryAttempts"] == 2
        assert response["Body"].read().count(b"\n") == 3

        # the container path answers the plain status
        server.set_faults(500, 1)
        answer = http(f"{server.url}/invocations", body, {"Content-Type": "text/csv"})
        assert answer[0] == 500 and "injected fault" in json.loads(answer[2])["error"]
    finally:
        client.close()
        retrying.close()
        server.stop()
