"""A Lambda function URL with AWS_IAM auth, as a local process, for the SageMaker API.

It does what the URL in front of ``byom-<stage>-sagemaker-api`` does: refuses a
request whose SigV4 signature (service ``lambda``) does not verify, hands the
rest to the function as a function URL event (payload 2.0, the body in base64
as Lambda sends a non-text content type) and answers with what the function
returns. The function is the template's handler, ``services.transform.handler``.

    python -m tests.integration.function_url --port N --region R

The secret it checks against is ``AWS_SECRET_ACCESS_KEY`` of its environment
(the local stack's "test").
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.transform.handler import handler
from tests.sigv4 import verify_sigv4

SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "test")
DENIED = "AccessDeniedException"


def function_url_event(path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {"http": {"method": "POST", "path": path}},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class FunctionUrl(BaseHTTPRequestHandler):
    region = "us-east-1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = dict(self.headers.items())
        url = f"http://{self.headers['Host']}{self.path}"
        try:
            scope = verify_sigv4("POST", url, headers, body, SECRET)
            if (scope["service"], scope["region"]) != ("lambda", self.region):
                raise AssertionError(f"signed for {scope['service']} in {scope['region']}")
        except (AssertionError, KeyError, ValueError) as refused:
            # As Lambda answers an unsigned or badly signed request.
            error = {"Content-Type": "application/json", "x-amzn-ErrorType": DENIED}
            self._answer(403, error, json.dumps({"Message": f"Forbidden: {refused}"}).encode())
            return
        answer = handler(function_url_event(self.path, headers, body), None)
        payload = answer.get("body") or ""
        data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
        self._answer(int(answer["statusCode"]), answer.get("headers") or {}, data)

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    FunctionUrl.region = args.region
    ThreadingHTTPServer(("127.0.0.1", args.port), FunctionUrl).serve_forever()


if __name__ == "__main__":
    main()
