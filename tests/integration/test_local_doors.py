"""The local stack's doors: no web page may read or write through the local servers.

Every server listens on 127.0.0.1, which any page the user has open can send
requests to. Each must refuse a Host other than its own loopback address and port
(DNS rebinding), and any request a browser marks as coming from another page
(``Origin``, ``Sec-Fetch-Site``); non-browser clients (boto3, aiohttp) keep working.
The browser half of this is tests/integration/test_local_doors_browser.py.
"""

from __future__ import annotations

import http.client
import uuid
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from infra.local import resources

pytestmark = pytest.mark.integration

BUCKET = "doors"
PLANTED = "input/planted.csv"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def send(
    url: str,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """One request with exactly these headers (Host included, when given)."""
    address = url.removeprefix("http://")
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = dict(headers or {})
        connection.putrequest(method, path, skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def form_post(key: str, boundary: str = "byomboundary") -> tuple[dict[str, str], bytes]:
    """What a page's <form method=post enctype=multipart/form-data> sends to S3: no preflight."""
    fields = [("key", key), ("x-amz-meta-planted", "yes")]
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n1,2,3\r\n--{boundary}--\r\n"
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return headers, "".join(parts).encode()


def no_cors_headers(answer: Answer) -> bool:
    return not any(name.startswith("access-control-") for name in answer.headers)


@pytest.fixture(scope="module")
def moto(own_moto_endpoint: str) -> str:
    s3 = resources.client("s3", own_moto_endpoint, "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return own_moto_endpoint


def planted(endpoint: str, key: str = PLANTED) -> bool:
    s3 = resources.client("s3", endpoint, "us-east-1")
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return False
    return True


def test_moto_answers_its_own_clients(moto: str) -> None:
    # boto3 (resources.client) sends neither Origin nor Sec-Fetch-Site.
    s3 = resources.client("s3", moto, "us-east-1")
    key = f"input/{uuid.uuid4().hex}.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"1,2\n")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"1,2\n"
    port = moto.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        answer = send(moto, f"/{BUCKET}?list-type=2", headers={"Host": host})
        assert answer.status == 200 and key.encode() in answer.body


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port of this machine
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "evil.example:PORT"},  # a name that resolves here (DNS rebinding)
        {"Host": "evil.example"},
    ],
)
def test_moto_lets_no_page_list_the_bucket(moto: str, headers: dict[str, str]) -> None:
    port = moto.rsplit(":", 1)[1]
    headers = {name: value.replace("PORT", port) for name, value in headers.items()}
    answer = send(moto, f"/{BUCKET}?list-type=2", headers=headers)
    assert answer.status == 403
    assert no_cors_headers(answer), answer.headers
    assert b"ListBucketResult" not in answer.body


def test_moto_grants_no_preflight(moto: str) -> None:
    answer = send(
        moto,
        f"/{BUCKET}/{PLANTED}",
        method="OPTIONS",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "PUT",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert answer.status == 403
    assert no_cors_headers(answer), answer.headers


@pytest.mark.parametrize(
    "browser_headers",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame's form
        {"Sec-Fetch-Site": "same-site"},  # a page on another port of this machine
    ],
)
def test_moto_takes_no_form_post(moto: str, browser_headers: dict[str, str]) -> None:
    headers, body = form_post(PLANTED)
    answer = send(moto, f"/{BUCKET}", method="POST", headers=headers | browser_headers, body=body)
    assert answer.status == 403
    assert no_cors_headers(answer), answer.headers
    assert not planted(moto)


def test_moto_sends_no_cors_headers_to_its_own_clients(moto: str) -> None:
    # Even a bucket CORS rule allowing every origin grants no page anything.
    s3 = resources.client("s3", moto, "us-east-1")
    s3.put_bucket_cors(
        Bucket=BUCKET,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "PUT", "POST"]}]
        },
    )
    port = moto.rsplit(":", 1)[1]
    answer = send(
        moto,
        f"/{BUCKET}?list-type=2",
        headers={"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status == 200
    assert no_cors_headers(answer), answer.headers
