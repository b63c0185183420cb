"""Whether a local stack's servers are ready: the model server's /ping (with its refusal
of a package), a TCP port that accepts connections.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path


class ModelRefused(RuntimeError):
    """The model server is up but refuses the package; the message says why."""


def model_ready(port: int, package: Path) -> bool:
    """Whether the model server answers /ping; raises `ModelRefused` at once when it
    answers that it cannot serve the package (waiting would not change that)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return bool(200 <= response.status < 300)
    except urllib.error.HTTPError as answer:
        if answer.code != 500:
            return False
        try:
            reason = json.loads(answer.read() or b"{}").get("error") or "no reason given"
        except ValueError:
            reason = "no reason given"
        raise ModelRefused(f"the model server refuses {package}: {reason}") from None
    except (urllib.error.URLError, OSError):
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
