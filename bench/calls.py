"""Count the AWS calls one job makes, by service and operation, from outside byom.

botocore's event hooks see only the process they live in, and a job's calls come
from many (pollers, children, the status service). moto's server sees them all:
its request recorder (``/moto-api/recorder/*``, file from
``MOTO_RECORDER_FILEPATH``) writes one JSON line per request with method, URL and
headers. The service comes from the SigV4 credential scope, the operation from
``X-Amz-Target`` (JSON protocols) or from the S3 method and query.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
SERVICE_NAMES = {"s3": "S3", "sqs": "SQS", "dynamodb": "DynamoDB", "events": "EventBridge"}


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def s3_operation(method: str, url: str, headers: dict[str, str]) -> str:
    query = parse_qs(urlparse(url).query, keep_blank_values=True)
    copy = bool(_header(headers, "x-amz-copy-source"))
    if method == "PUT" and "partNumber" in query:
        return "UploadPartCopy" if copy else "UploadPart"
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "GET" and ("list-type" in query or urlparse(url).path.count("/") <= 1):
        return "ListObjects"
    if method == "GET":
        return "GetObject (range)" if _header(headers, "range") else "GetObject"
    return method


def operation(entry: dict) -> tuple[str, str]:
    """(service, operation) of one recorded request."""
    headers = entry.get("headers") or {}
    scope = _SCOPE.search(_header(headers, "authorization"))
    service = scope.group(1) if scope else "?"
    target = _header(headers, "x-amz-target")
    if target:
        return SERVICE_NAMES.get(service, service), target.rpartition(".")[2]
    if service == "s3":
        return "S3", s3_operation(entry["method"], entry["url"], headers)
    # Query protocol (form body): Action=...
    action = parse_qs(str(entry.get("body") or "")).get("Action", ["?"])[0]
    return SERVICE_NAMES.get(service, service), action


UPLOAD_OPERATIONS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def entries(text: str) -> Iterator[dict]:
    """The recorded requests in ``text``.

    moto's threads append each entry and its newline in two writes, so two entries
    can share a line; they are read as consecutive JSON values, not as lines.
    """
    decoder = json.JSONDecoder()
    position = 0
    while True:
        start = text.find("{", position)
        if start < 0:
            return
        try:
            entry, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1  # torn by another thread's write: resume at the next entry
            continue
        if isinstance(entry, dict) and "method" in entry:
            yield entry


def count_calls(
    text: str, ignore_queue: str | None = None, ignore_upload_of: str | None = None
) -> Counter[tuple[str, str]]:
    """Calls by (service, operation), leaving out the benchmark's own: those naming
    ``ignore_queue`` (its done-event queue) and the upload of key ``ignore_upload_of``."""
    counts: Counter[tuple[str, str]] = Counter()
    for entry in entries(text):
        body = entry.get("body")
        if ignore_queue and not entry.get("body_encoded") and ignore_queue in str(body):
            continue
        service, name = operation(entry)
        path = unquote(urlparse(entry["url"]).path)
        if ignore_upload_of and name in UPLOAD_OPERATIONS and path.endswith("/" + ignore_upload_of):
            continue
        counts[service, name] += 1
    return counts


class Recorder:
    """moto's request recorder, switched on around one job."""

    def __init__(self, endpoint_url: str, path: Path) -> None:
        self.endpoint_url = endpoint_url
        self.path = path

    def _post(self, action: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/recorder/{action}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def start(self) -> None:
        self._post("reset-recording")
        self._post("start-recording")

    def stop(self) -> str:
        self._post("stop-recording")
        if not self.path.exists():
            return ""
        text = self.path.read_text()
        self.path.unlink()  # it holds every request body: tens of MB per job
        return text
