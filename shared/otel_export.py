"""Where byom's spans go: one tracer provider set-up for every byom process.

Kept free of other byom imports so that the model server's image, which ships
``model/`` and this file only, sets tracing up the same way as the services.

Spans are exported over OTLP/HTTP (protobuf) to the traces endpoint, when there
is one: the local stack's receiver (``infra/local/otlp_receiver.py``), an ADOT
collector, or X-Ray's own OTLP endpoint ``https://xray.<region>.amazonaws.com/v1/traces``,
whose requests are signed with SigV4 (service ``xray``) using the process's AWS
credentials. Without an endpoint, spans are created and propagated, not exported.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import urlsplit

import requests
from opentelemetry import propagate, trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
# More traces URLs (comma-separated, used as given) that get every span as well:
# the local stack exports to its own receiver and to the user's collector. Read
# here, not in a settings tree, since both trees' processes install through here.
ALSO_EXPORT_VARIABLE = "BYOM_OTLP_ALSO_TRACES_URLS"
_XRAY_HOST = re.compile(r"^xray\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def traces_url(endpoint: str, *, signal_specific: bool) -> str:
    """The URL spans are posted to, as the OTLP exporter specification derives it.

    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as given;
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base to which ``/v1/traces`` is appended.
    """
    if signal_specific:
        return endpoint
    return endpoint.rstrip("/") + TRACES_PATH


def xray_region(url: str) -> str | None:
    """The region of an X-Ray OTLP endpoint (which needs SigV4), None for any other."""
    match = _XRAY_HOST.match(urlsplit(url).hostname or "")
    return match.group(1) if match else None


class SigV4Auth(requests.auth.AuthBase):
    """Signs each export request for X-Ray's OTLP endpoint with the process's credentials
    (the Lambda role, the Batch job role, the SageMaker execution role)."""

    def __init__(self, region: str) -> None:
        import botocore.session

        self.region = region
        self._session = botocore.session.get_session()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth as BotocoreSigV4
        from botocore.awsrequest import AWSRequest

        credentials = self._session.get_credentials()
        if credentials is None:
            log.warning("no AWS credentials to sign span exports with")
            return request
        signed = AWSRequest(
            method=request.method or "POST",
            url=request.url or "",
            data=request.body,
            headers={"Content-Type": request.headers.get("Content-Type", "")},
        )
        BotocoreSigV4(credentials.get_frozen_credentials(), "xray", self.region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


def install(
    service: str, endpoint: str | None, *, signal_specific: bool = False, **attributes: Any
) -> TracerProvider:
    """Make the X-Ray id generator, propagator and (with an endpoint) the exporter global."""
    provider = TracerProvider(
        id_generator=AwsXRayIdGenerator(),
        resource=Resource.create({"service.name": service, **attributes}),
    )
    urls = [traces_url(endpoint, signal_specific=signal_specific)] if endpoint else []
    urls += [url.strip() for url in os.environ.get(ALSO_EXPORT_VARIABLE, "").split(",")]
    for url in dict.fromkeys(url for url in urls if url):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        session = requests.Session()
        if (region := xray_region(url)) is not None:
            session.auth = SigV4Auth(region)
        # Batched in the background (the schedule delay comes from OTEL_BSP_*);
        # short-lived processes flush before they exit (flush / shutdown).
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=url, session=session))
        )
    trace.set_tracer_provider(provider)
    propagate.set_global_textmap(AwsXRayPropagator())
    return provider


def flush() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush()
