"""Webhook routes. The answer is 2xx only after Kafka acknowledged the raw envelope.

Client mistakes get a 4xx with a short JSON reason; broker trouble gets 503 + Retry-After.
No handler blocks the event loop, and no response carries a stack trace or a secret.
"""

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest import metrics
from ingest.publisher import PublishUnavailable, RawPublisher
from ingest.rejections import Rejected
from ingest.stripe_webhook import read_event, verify_signature
from schemas.envelope import RawEnvelope, Source

log = logging.getLogger("revstream.ingest")

RETRY_AFTER_S = 5
SHED_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class StripeEndpoint:
    """One Stripe webhook endpoint: its signing secrets and the entity its money belongs to."""

    name: str
    entity: str
    secrets: Sequence[str]


@dataclass(frozen=True)
class IngestConfig:
    stripe_endpoints: Sequence[StripeEndpoint]
    tolerance_s: int
    max_body_bytes: int
    clock: Callable[[], float] = time.time


class Admission:
    """A bound on webhook requests in progress. Over the bound a request is shed at once with
    503 + Retry-After (the provider retries later) instead of queueing until it times out: under
    overload every request gets a fast, honest answer and nothing answered 2xx is lost.
    Only the event loop touches the counter, so no lock is needed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        metrics.IN_FLIGHT.set(self.in_flight)
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.set(self.in_flight)


UNBOUNDED = Admission(limit=2**31)


async def read_limited(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    """The body, refused with 413 as soon as it (or its declared Content-Length) exceeds `limit`."""
    if declared is not None:
        if not declared.isdigit():
            raise Rejected(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Rejected(413, "body_too_large", f"body is larger than {limit} bytes")
    chunks_read, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body_too_large", f"body is larger than {limit} bytes")
        chunks_read.append(chunk)
    return b"".join(chunks_read)


async def _read_limited(request: Request, limit: int) -> bytes:
    return await read_limited(request.stream(), request.headers.get("content-length"), limit)


async def _asgi_body(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks straight from the ASGI server (what Request.stream() does)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


# The Content-Type is kept in the raw envelope; bounded so an envelope stays within the record
# budget schemas.envelope.MAX_BODY_BYTES is set from.
MAX_CONTENT_TYPE = 255


def bounded_content_type(value: str) -> str:
    if len(value) > MAX_CONTENT_TYPE:
        raise Rejected(
            415, "unsupported_media_type", f"Content-Type is longer than {MAX_CONTENT_TYPE} characters"
        )
    return value


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _answer(source: str, status: int, body: dict[str, object], headers: dict[str, str] | None = None):
    metrics.count_answer(source, status)
    return JSONResponse(body, status_code=status, headers=headers)


def refuse(source: str, rejected: Rejected) -> JSONResponse:
    """A client mistake: 4xx with a safe reason, a metric, one log line without the payload."""
    metrics.REJECTIONS.labels(source=source, reason=rejected.reason).inc()
    log.info("%s request refused: %s", source, rejected)
    return _answer(source, rejected.status, {"error": rejected.reason, "message": rejected.message})


def shed(source: str) -> JSONResponse:
    metrics.SHED.labels(source=source).inc()
    return _answer(
        source,
        503,
        {"error": "overloaded", "message": "too many requests in progress, retry later"},
        headers={"Retry-After": str(SHED_RETRY_AFTER_S)},
    )


async def publish_or_503(
    publisher: RawPublisher, envelope: RawEnvelope, key: bytes, ok_body: dict[str, object]
) -> JSONResponse:
    """Publish and answer 200 only after the broker's ack; no ack within the bound is a 503 with
    Retry-After, so the sender retries and nothing it was told we have is missing."""
    source = envelope.source.value
    started = time.perf_counter()
    try:
        await publisher.publish(envelope, key=key)
    except PublishUnavailable as exc:
        metrics.BROKER_ERRORS.inc()
        metrics.count_event(source, envelope.event_type, 503)
        log.warning(
            "broker did not acknowledge %s %s in time (%s): answered 503",
            source,
            envelope.provider_event_id,
            exc,
        )
        return _answer(
            source,
            503,
            {"error": "unavailable", "message": "event log unavailable, retry later"},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
    metrics.count_event(source, envelope.event_type, 200)
    return _answer(source, 200, ok_body)


class StripeWebhooks:
    """POST /webhooks/stripe (the endpoint named "default") and /webhooks/stripe/{endpoint}, as a
    bare ASGI app: the busiest route skips the framework's request and routing objects
    (`FastPaths` sends it requests directly; it also works mounted as a Starlette route).

    Each endpoint verifies with its own secrets (several during a rotation) and records its own
    business entity. An endpoint without a secret is disabled: 404, like one that does not exist.
    """

    PATH = "/webhooks/stripe"

    def __init__(
        self, config: IngestConfig, publisher: RawPublisher, admission: Admission = UNBOUNDED
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._admission = admission
        self._endpoints = {e.name: e for e in config.stripe_endpoints if e.secrets}

    @staticmethod
    def endpoint_name(path: str) -> str | None:
        """The endpoint a path names: "default" for /webhooks/stripe, NAME for
        /webhooks/stripe/NAME, None for any other path."""
        if path == StripeWebhooks.PATH:
            return "default"
        if path.startswith(StripeWebhooks.PATH + "/"):
            name = path[len(StripeWebhooks.PATH) + 1 :]
            return name if name and "/" not in name else None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope.get("path_params", {}).get("endpoint") or self.endpoint_name(scope["path"]) or ""
        response = await self._respond(scope, receive, self._endpoints.get(name))
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive, endpoint: StripeEndpoint | None) -> Response:
        if scope["method"] != "POST":
            return JSONResponse(
                {"error": "method_not_allowed", "message": "use POST"},
                status_code=405,
                headers={"Allow": "POST"},
            )
        if endpoint is None:
            return _answer("stripe", 404, {"error": "not_found", "message": "no such webhook endpoint"})
        if not self._admission.try_enter():
            return shed("stripe")
        try:
            return await self._verify_and_publish(scope, receive, endpoint)
        finally:
            self._admission.leave()

    async def _verify_and_publish(self, scope: Scope, receive: Receive, endpoint: StripeEndpoint) -> Response:
        config = self._config
        try:
            content_type = bounded_content_type(_header(scope, b"content-type") or "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                raise Rejected(415, "unsupported_media_type", "Content-Type must be application/json")
            body = await read_limited(
                _asgi_body(receive), _header(scope, b"content-length"), config.max_body_bytes
            )
            now = config.clock()
            verify_signature(
                body, _header(scope, b"stripe-signature"), endpoint.secrets, config.tolerance_s, now
            )
            facts = read_event(body)
        except Rejected as rejected:
            return refuse("stripe", rejected)
        except ClientDisconnect:
            return _answer("stripe", 400, {"error": "client_disconnected"})

        envelope = RawEnvelope(
            source=Source.STRIPE,
            endpoint=endpoint.name,
            entity=endpoint.entity,
            provider_event_id=facts.event_id,
            event_type=facts.event_type,
            livemode=facts.livemode,
            received_at=datetime.fromtimestamp(now, UTC),
            content_type=content_type,
            body=body,
        )
        key = (facts.object_id or facts.event_id).encode()
        return await publish_or_503(self._publisher, envelope, key, {"received": True, "id": facts.event_id})

    def routes(self) -> list[Route]:
        """The same endpoints as Starlette routes (for apps without FastPaths in front)."""
        return [
            Route(self.PATH, self, methods=["POST"]),
            Route(self.PATH + "/{endpoint}", self, methods=["POST"]),
        ]


def stripe_routes(
    config: IngestConfig, publisher: RawPublisher, admission: Admission = UNBOUNDED
) -> list[Route]:
    return StripeWebhooks(config, publisher, admission).routes()


class WebhookApp(Protocol):
    """An ASGI app for the Stripe webhook paths (StripeWebhooks; the bench's no-work baseline)."""

    def endpoint_name(self, path: str) -> str | None: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class FastPaths:
    """The HTTP app in front of the framework: Stripe webhooks (the one high-volume route) go
    straight to `stripe`; every other request goes to `app` (routing, middleware, API).
    Measured by `revstream bench`: see README "Performance"."""

    def __init__(self, app: ASGIApp, stripe: WebhookApp) -> None:
        self._app = app
        self._stripe = stripe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._stripe.endpoint_name(scope["path"]) is not None:
            await self._stripe(scope, receive, send)
        else:
            await self._app(scope, receive, send)
