"""SigV4 checked the way AWS documents it, independently of botocore's signer."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse


def verify_sigv4(
    method: str, url: str, headers: dict[str, str], body: bytes, secret: str
) -> dict[str, str]:
    """Recompute the request's SigV4 signature from its parts; returns the scope."""
    lowered = {name.lower(): value for name, value in headers.items()}
    # The HTTP client sends Host from the URL (as urllib does).
    lowered.setdefault("host", urllib.parse.urlsplit(url).netloc)
    authorization = lowered["authorization"]
    algorithm, rest = authorization.split(" ", 1)
    assert algorithm == "AWS4-HMAC-SHA256"
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    access_key, date, region, service, terminator = fields["Credential"].split("/")
    assert terminator == "aws4_request"
    signed = fields["SignedHeaders"].split(";")
    parsed = urllib.parse.urlsplit(url)
    canonical_headers = "".join(f"{name}:{' '.join(lowered[name].split())}\n" for name in signed)
    payload_hash = hashlib.sha256(body).hexdigest()
    canonical = "\n".join(
        [
            method,
            parsed.path or "/",
            parsed.query,
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )
    amz_date = lowered["x-amz-date"]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [algorithm, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["Signature"]), "signature does not verify"
    return {
        "access_key": access_key,
        "region": region,
        "service": service,
        "signed": ";".join(signed),
    }
