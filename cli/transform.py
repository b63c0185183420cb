"""byom transform: run a SageMaker CreateTransformJob request as it is, locally or on AWS.

The request is the one ``aws sagemaker create-transform-job --cli-input-json``
takes, sent in SageMaker's own JSON protocol (``POST /``, ``X-Amz-Target:
SageMaker.<Operation>``, ``application/x-amz-json-1.1``) to the one API byom has
(services/transform/api.py):

- locally, to the local stack's endpoint (http://127.0.0.1:4566), signed for
  service ``sagemaker`` exactly as the AWS CLI and boto3 sign it;
- on a deployed stack (``--stack``), to the SageMaker API's function URL (the
  stack's output ``SageMakerApiUrl``), signed for service ``lambda`` with the
  caller's credentials, since the URL admits IAM-signed requests only.

The answer is printed as the AWS CLI prints it (botocore's parser, timestamps in
ISO 8601): ``TransformJobArn`` for a new job, DescribeTransformJob's shape for
``byom transform describe NAME``.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Protocol

import boto3
import botocore.session
import typer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError
from botocore.model import OperationModel
from botocore.parsers import create_parser

from cli import views
from cli.target import LOCAL_ENDPOINT, LOCAL_REGION, OUTPUT_REGION
from shared.errors import ByomError

# The stack output holding the SageMaker API's function URL (infra/cloudformation/byom.yaml).
OUTPUT_API_URL = "SageMakerApiUrl"
CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
# The function may take its whole timeout (300 s) to copy a package and announce
# thousands of objects before it answers.
READ_TIMEOUT_SECONDS = 330.0
ACCESS_HINT = (
    "the SageMaker API's function URL admits requests signed by principals of the stack's "
    "account allowed lambda:InvokeFunctionUrl and lambda:InvokeFunction on "
    "byom-<stage>-sagemaker-api"
)
EXIT_FAILED = 1
EXIT_USAGE = 2

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)


class TransformCommandError(ByomError):
    """The request cannot be sent as given (an unreadable file, a stack without the API)."""


class ApiError(ByomError):
    """The SageMaker API refused a request; code and message are SageMaker's."""

    def __init__(self, operation: str, status: int, code: str, message: str) -> None:
        self.operation, self.status, self.code, self.message = operation, status, code, message
        super().__init__(f"{operation}: {code}: {message}")


@dataclass(frozen=True)
class Api:
    """Where SageMaker requests go and how they are signed."""

    url: str
    service: str  # the SigV4 service name: "sagemaker" locally, "lambda" for a function URL
    region: str
    local: bool


class _Where(Protocol):
    """What the top-level options say (``Where`` in cli/where.py)."""

    endpoint_url: str | None
    stack: str | None
    region: str | None


# ------------------------------------------------------------------ the request


def read_request(source: str) -> dict[str, Any]:
    """``--cli-input-json``'s value as the AWS CLI reads it: ``file://PATH`` or the JSON itself."""
    if source.startswith("file://"):
        path = Path(source.removeprefix("file://")).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TransformCommandError(f"cannot read {path}: {exc}") from None
    else:
        text = source
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TransformCommandError(f"--cli-input-json is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise TransformCommandError("--cli-input-json must be a JSON object")
    return request


def build_request(
    api: Api, operation: str, params: dict[str, Any], credentials: Credentials
) -> AWSRequest:
    """The signed HTTP request for ``operation`` (``CreateTransformJob``...)."""
    body = json.dumps(params, separators=(",", ":")).encode()
    headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation}
    if api.service == "lambda":
        # A function URL authenticates the body by its hash, given in a signed header.
        headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    request = AWSRequest(method="POST", url=api.url, data=body, headers=headers)
    SigV4Auth(credentials, api.service, api.region).add_auth(request)
    return request


@cache
def _operation(name: str) -> OperationModel:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model(name)


def parse_answer(operation: str, status: int, headers: dict[str, str], body: bytes) -> Any:
    """The answer as boto3 gives it (datetimes for timestamps), or the API's error."""
    # None for an operation without output (StopTransformJob), as botocore passes it.
    shape: Any = _operation(operation).output_shape
    parsed: dict[str, Any] = create_parser("json").parse(
        {"status_code": status, "headers": headers, "body": body}, shape
    )
    if status >= 300 or "Error" in parsed:
        error = parsed.get("Error", {})
        code = str(error.get("Code") or "")
        if not code or code == str(status):
            # Lambda's own refusals (a function URL's 403) name the error in a header.
            lowered = {name.lower(): value for name, value in headers.items()}
            code = lowered.get("x-amzn-errortype", "").split(":")[0] or f"HTTP {status}"
        raise ApiError(
            operation,
            status,
            code,
            str(error.get("Message") or body[:500].decode("utf-8", "replace")),
        )
    parsed.pop("ResponseMetadata", None)
    return parsed


def call(
    api: Api,
    operation: str,
    params: dict[str, Any],
    credentials: Credentials,
    *,
    timeout: float = READ_TIMEOUT_SECONDS,
) -> Any:
    """Send one SageMaker request and return its parsed answer."""
    prepared = build_request(api, operation, params, credentials).prepare()
    assert isinstance(prepared.body, bytes)
    http = urllib.request.Request(
        prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as failed:
        status, headers, body = failed.code, dict(failed.headers), failed.read()
    except urllib.error.URLError as exc:
        where = api.url + (": is the local stack up (make up)?" if api.local else "")
        raise TransformCommandError(f"cannot reach {where} ({exc.reason})") from None
    return parse_answer(operation, status, headers, body)


def answer_json(answer: Any) -> str:
    """As the AWS CLI prints it: indented, timestamps in ISO 8601."""

    def encode(value: Any) -> str:
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON")

    return json.dumps(answer, indent=4, default=encode)


# ------------------------------------------------------------------ where it goes


def local_api(endpoint_url: str | None = None, region: str | None = None) -> Api:
    url = (endpoint_url or LOCAL_ENDPOINT).rstrip("/") + "/"
    return Api(url=url, service="sagemaker", region=region or LOCAL_REGION, local=True)


def stack_outputs(stack: str, *, region: str | None, endpoint_url: str | None) -> dict[str, str]:
    kwargs: dict[str, Any] = {"region_name": _region(region), "config": _CONFIG}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    cloudformation = boto3.client("cloudformation", **kwargs)
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except cloudformation.exceptions.ClientError as exc:
        raise TransformCommandError(f"stack {stack!r}: {exc}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def api_from_outputs(outputs: dict[str, str], *, region: str | None) -> Api:
    url = outputs.get(OUTPUT_API_URL)
    if not url:
        raise TransformCommandError(
            f"the stack has no output {OUTPUT_API_URL}: deploy byom's current template "
            "(infra/deploy.sh) to serve SageMaker's transform API"
        )
    return Api(
        url=url, service="lambda", region=outputs.get(OUTPUT_REGION) or _region(region), local=False
    )


def api_for(where: _Where, *, local: bool) -> Api:
    """The local stack's endpoint, or with ``--stack`` (and not ``--local``) the stack's URL."""
    if local or not where.stack:
        return local_api(where.endpoint_url, where.region)
    outputs = stack_outputs(where.stack, region=where.region, endpoint_url=where.endpoint_url)
    return api_from_outputs(outputs, region=where.region)


def _region(region: str | None) -> str:
    return region or boto3.session.Session().region_name or LOCAL_REGION


def credentials_for(api: Api) -> Credentials:
    found: Credentials | None = boto3.session.Session().get_credentials()
    if found is None:
        if api.local:
            # The local stack takes any credentials; don't make the user invent some.
            return Credentials("test", "test")
        raise NoCredentialsError()
    return found


# ------------------------------------------------------------------ the command

app = typer.Typer(
    name="transform",
    help="Run SageMaker transform job requests (CreateTransformJob's JSON) on byom.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@dataclass(frozen=True)
class _Context:
    where: _Where
    local: bool


def _send(ctx: typer.Context, operation: str, params: dict[str, Any]) -> Any:
    context: _Context = ctx.obj
    try:
        api = api_for(context.where, local=context.local)
        return call(api, operation, params, credentials_for(api))
    except ByomError as exc:
        err = views.console(stderr=True)
        err.print(views.error_line(str(exc)))
        if isinstance(exc, ApiError) and exc.status == 403 and not context.local:
            err.print(views.plain(ACCESS_HINT))
        code = EXIT_USAGE if isinstance(exc, TransformCommandError) else EXIT_FAILED
        raise typer.Exit(code) from None


@app.callback()
def create(
    ctx: typer.Context,
    cli_input_json: Annotated[
        str | None,
        typer.Option(
            "--cli-input-json",
            help="The CreateTransformJob request: file://job.json, or the JSON itself.",
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="The local stack, even with --stack or BYOM_STACK.")
    ] = False,
) -> None:
    """Create a transform job from CreateTransformJob's request JSON (as aws sagemaker
    create-transform-job --cli-input-json takes it) and print its TransformJobArn.

    Locally it goes to the local stack's endpoint; with --stack to the stack's
    SageMaker API, signed with your AWS credentials.
    """
    ctx.obj = _Context(where=ctx.obj, local=local)
    if ctx.invoked_subcommand is not None:
        if cli_input_json is not None:
            raise typer.BadParameter("give --cli-input-json without a subcommand")
        return
    if cli_input_json is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)
    try:
        request = read_request(cli_input_json)
    except TransformCommandError as exc:
        views.console(stderr=True).print(views.error_line(str(exc)))
        raise typer.Exit(EXIT_USAGE) from None
    print(answer_json(_send(ctx, "CreateTransformJob", request)))


@app.command()
def describe(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The TransformJobName.")],
) -> None:
    """DescribeTransformJob: the job's request, status, times and failure reason."""
    print(answer_json(_send(ctx, "DescribeTransformJob", {"TransformJobName": name})))


@app.command()
def stop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The TransformJobName.")],
) -> None:
    """StopTransformJob: the job goes Stopping, then Stopped once its objects' jobs end."""
    _send(ctx, "StopTransformJob", {"TransformJobName": name})
    views.console().print(views.plain(f"stopping {name}: byom transform describe {name}"))
