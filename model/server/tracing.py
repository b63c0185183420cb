"""The model server's spans: one server span per invocation, continuing the caller's trace.

The worker sends its client span's X-Ray header as ``X-Amzn-Trace-Id`` (SageMaker
passes it on to the container); the server span here is that span's child, so
the time the model takes shows in the upload's trace. Spans are only made when
there is somewhere to send them (``OTEL_EXPORTER_OTLP_*``), and only for the
invocation routes: health checks stay out of traces.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from model.server.settings import ServerSettings

log = logging.getLogger(__name__)

SERVICE = "byom-model-server"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middlewares(settings: ServerSettings) -> list[Any]:
    """The tracing middleware, when spans are exported; none otherwise."""
    endpoint = settings.otlp_traces_endpoint or settings.otlp_endpoint
    if not endpoint:
        return []
    try:
        from opentelemetry import propagate, trace
        from opentelemetry.semconv.attributes.http_attributes import (
            HTTP_REQUEST_METHOD,
            HTTP_RESPONSE_STATUS_CODE,
            HTTP_ROUTE,
        )
        from opentelemetry.semconv.attributes.url_attributes import URL_PATH
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from shared import otel_export
    except ImportError as exc:  # an image built without the tracing packages
        log.warning("spans are not exported: %s", exc)
        return []
    attributes = {"cloud.region": settings.region} if settings.region else {}
    otel_export.install(
        SERVICE, endpoint, signal_specific=settings.otlp_traces_endpoint is not None, **attributes
    )
    tracer = trace.get_tracer("byom.model_server")

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/invocations"):
            return await handler(request)
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        with tracer.start_as_current_span(
            f"{request.method} {template}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                HTTP_REQUEST_METHOD: request.method,
                HTTP_ROUTE: template,
                URL_PATH: request.path,
                "byom.request_bytes": request.content_length or 0,
            },
        ) as span:
            response = await handler(request)
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status}"))
            return response

    return [traced]
