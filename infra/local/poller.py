"""Feed an SQS queue to a Lambda-style handler, as Lambda's event source mapping does.

Batches of up to ``--batch-size`` messages, converted to the Lambda SQS event
shape; the messages the handler reports in ``batchItemFailures`` (or all of them
when it raises) are left for the visibility timeout to return, which is what
makes the queue's redrive policy move poison messages to the DLQ.

The handler runs in its own process (``Runtime``, Lambda's execution environment):
imported once, reused while it behaves, and killed when an invocation runs past
``--timeout-seconds``. As on Lambda, a timed-out invocation returns its whole
batch to the queue, and the next one starts a fresh process.

With :data:`BUNDLE_PYTHON_VARIABLE` and :data:`BUNDLE_PATH_VARIABLE` set (the
stack's ``lambda_bundle``), that process is instead the given interpreter running
:mod:`infra.local.lambda_bootstrap` on the unzipped deployment bundle alone, so
the functions run from exactly what ``infra/deploy.sh`` uploads.

    python -m infra.local.poller --queue-url URL [--queue-url URL ...] \\
        --handler services.status.handler:handler
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.lambda_bootstrap import serve

log = logging.getLogger("byom.local.poller")


def to_lambda_record(message: Any, queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "dataType": value["DataType"],
                "stringListValues": [],
                "binaryListValues": [],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


# Lambda gives a function's initialisation (imports, module-level set-up) 10 s;
# these machines are slower and shared, so the local limit is generous.
INIT_TIMEOUT_SECONDS = 120.0


# The interpreter and sys.path (os.pathsep-separated) of functions run from their
# deployment bundle; set by the local stack, never passed on to the handler.
BUNDLE_PYTHON_VARIABLE = "BYOM_LOCAL_LAMBDA_PYTHON"
BUNDLE_PATH_VARIABLE = "BYOM_LOCAL_LAMBDA_PATH"
_BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")


@dataclass(frozen=True)
class Bundle:
    """Run the handler with ``python`` from ``path`` alone (the bundle first)."""

    python: str
    path: tuple[str, ...]

    @classmethod
    def from_environment(cls) -> Bundle | None:
        python = os.environ.get(BUNDLE_PYTHON_VARIABLE)
        path = os.environ.get(BUNDLE_PATH_VARIABLE)
        if not python or not path:
            return None
        return cls(python, tuple(path.split(os.pathsep)))

    def environment(self) -> dict[str, str]:
        return {
            name: value
            for name, value in os.environ.items()
            if name not in (BUNDLE_PYTHON_VARIABLE, BUNDLE_PATH_VARIABLE)
        }


class _Executed:
    """A bundle runtime's process, with the part of ``BaseProcess`` the Runtime uses."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid: int | None = process.pid

    def is_alive(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        self._process.kill()

    def join(self) -> None:
        self._process.wait()


class InvocationFailed(Exception):
    """The handler raised, timed out or died: the whole batch goes back to the queue."""


class Runtime:
    """One Lambda execution environment for ``spec``, in a child process.

    ``invoke`` waits at most the function's timeout; past it the process is
    killed mid-invocation, whatever the handler is doing, as Lambda does.
    """

    def __init__(
        self,
        spec: str,
        *,
        function_name: str,
        timeout_seconds: int,
        bundle: Bundle | None = None,
    ) -> None:
        self.spec = spec
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.bundle = bundle or Bundle.from_environment()
        self._process: BaseProcess | _Executed | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        # spawn, not fork: a fresh interpreter, as a cold start is, sharing no
        # sockets or locks with the poller.
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve,
            args=(self.spec, self.function_name, self.timeout_seconds, child),
            name=f"{self.function_name}-runtime",
            daemon=True,
        )
        process.start()
        child.close()
        return process, parent

    def _execute(self, bundle: Bundle) -> tuple[_Executed, Connection]:
        ours, theirs = socket.socketpair()
        paths = [arg for folder in bundle.path for arg in ("--path", folder)]
        process = subprocess.Popen(
            [
                bundle.python, "-I", "-S", str(_BOOTSTRAP), "--fd", str(theirs.fileno()),
                *paths, self.spec, self.function_name, str(self.timeout_seconds),
            ],
            pass_fds=(theirs.fileno(),),
            env=bundle.environment(),
        )  # fmt: skip
        theirs.close()
        return _Executed(process), Connection(ours.detach())

    def start(self) -> None:
        """Start a fresh environment and wait for its initialisation."""
        self.stop()
        if self.bundle is not None:
            process, parent = self._execute(self.bundle)
            self._process, self._conn = process, parent
        else:
            self._process, self._conn = self._spawn()
        parent = self._conn
        if not parent.poll(INIT_TIMEOUT_SECONDS):
            self.stop()
            raise InvocationFailed(f"{self.spec}: init took over {INIT_TIMEOUT_SECONDS:.0f} s")
        try:
            kind, payload = parent.recv()
        except EOFError:
            kind, payload = "init_error", "the runtime exited during init"
        if kind != "ready":
            self.stop()
            raise InvocationFailed(f"{self.spec}: init failed\n{payload}")

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
        self._process = self._conn = None

    def ensure_started(self) -> None:
        if self._process is None or not self._process.is_alive():
            self.start()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """The handler's result; raises ``InvocationFailed`` if there is none."""
        self.ensure_started()
        assert self._conn is not None
        self._conn.send(event)
        if not self._conn.poll(self.timeout_seconds):
            self.stop()  # killed in the middle of whatever it was doing
            raise InvocationFailed(f"Task timed out after {self.timeout_seconds} seconds")
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self.stop()
            raise InvocationFailed("the runtime exited during the invocation") from None
        if kind != "ok":
            raise InvocationFailed(f"the handler raised\n{payload}")
        result: dict[str, Any] = payload
        return result


def poll(
    queue_urls: list[str],
    runtime: Runtime,
    *,
    function_name: str,
    batch_size: int,
    wait_seconds: int,
    should_stop: Callable[[], bool],
) -> None:
    """Poll the queues in turn (one event source mapping each) until told to stop."""
    sqs = boto3.client("sqs")
    region = sqs.meta.region_name
    arns = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for url in queue_urls
    }
    # Long polling one queue would starve the others, so with several queues the
    # poller sweeps them without waiting and pauses only when all were empty.
    wait = wait_seconds if len(queue_urls) == 1 else 0
    while not should_stop():
        received = 0
        for url in queue_urls:
            try:
                # Start (or restart) the environment before taking messages, so
                # a cold start does not eat into their visibility timeout.
                runtime.ensure_started()
                received += _poll_once(
                    sqs, url, arns[url], region, runtime, function_name, batch_size, wait
                )
            except (BotoCoreError, ClientError, InvocationFailed):
                # Like Lambda's event source mapping: keep polling through outages.
                log.exception("polling %s failed; trying again", url)
                time.sleep(1)
        if not received and wait == 0:
            time.sleep(wait_seconds)


def _poll_once(
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    region: str,
    runtime: Runtime,
    function_name: str,
    batch_size: int,
    wait_seconds: int,
) -> int:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch_size,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = response.get("Messages", [])
    if not messages:
        return 0
    event = {"Records": [to_lambda_record(m, queue_arn, region) for m in messages]}
    try:
        result = runtime.invoke(event)
    except InvocationFailed as exc:
        log.error(
            "%s: %s; the whole batch of %d will be retried", function_name, exc, len(messages)
        )
        return len(messages)
    failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
    done = [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
        for i, m in enumerate(messages)
        if m["MessageId"] not in failed
    ]
    if done:
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
    return len(messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue-url", required=True, action="append", help="repeatable")
    parser.add_argument("--handler", required=True, help="module:function")
    parser.add_argument("--function-name", default="byom-local")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--wait-seconds", type=int, default=1)
    parser.add_argument("--timeout-seconds", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s poller %(message)s")

    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime = Runtime(
        args.handler, function_name=args.function_name, timeout_seconds=args.timeout_seconds
    )
    try:
        poll(
            args.queue_url,
            runtime,
            function_name=args.function_name,
            batch_size=args.batch_size,
            wait_seconds=args.wait_seconds,
            should_stop=lambda: stopping,
        )
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
