"""Webhook routes. The answer is 2xx only after Kafka acknowledged the raw envelope.

Client mistakes get a 4xx with a short JSON reason; broker trouble gets 503 + Retry-After.
No handler blocks the event loop, and no response carries a stack trace or a secret.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ingest import metrics
from ingest.publisher import PublishUnavailable, RawPublisher
from ingest.rejections import Rejected
from ingest.stripe_webhook import read_event, verify_signature
from schemas.envelope import RawEnvelope, Source

log = logging.getLogger("revstream.ingest")

RETRY_AFTER_S = 5


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


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Rejected(400, "bad_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise Rejected(413, "body_too_large", f"body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body_too_large", f"body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Rejected(415, "unsupported_media_type", "Content-Type must be application/json")


def _answer(source: str, status: int, body: dict[str, object], headers: dict[str, str] | None = None):
    metrics.WEBHOOKS.labels(source=source, status=str(status)).inc()
    return JSONResponse(body, status_code=status, headers=headers)


def stripe_routes(config: IngestConfig, publisher: RawPublisher) -> list[Route]:
    """POST /webhooks/stripe: the default endpoint. Disabled (404) when it has no secret."""
    endpoints = {e.name: e for e in config.stripe_endpoints if e.secrets}

    async def receive(request: Request) -> JSONResponse:
        endpoint = endpoints.get("default")
        if endpoint is None:
            return _answer("stripe", 404, {"error": "not_found"})
        try:
            _require_json(request)
            body = await _read_limited(request, config.max_body_bytes)
            now = config.clock()
            verify_signature(
                body, request.headers.get("stripe-signature"), endpoint.secrets, config.tolerance_s, now
            )
            facts = read_event(body)
        except Rejected as rejected:
            metrics.REJECTIONS.labels(source="stripe", reason=rejected.reason).inc()
            log.info("stripe webhook refused: %s", rejected)
            return _answer("stripe", rejected.status, {"error": rejected.reason, "message": rejected.message})
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
            content_type=request.headers.get("content-type", ""),
            body=body,
        )
        started = time.perf_counter()
        try:
            await publisher.publish(envelope, key=(facts.object_id or facts.event_id).encode())
        except PublishUnavailable as exc:
            metrics.BROKER_ERRORS.inc()
            metrics.count_event("stripe", facts.event_type, 503)
            log.warning("broker did not acknowledge %s in time (%s): answered 503", facts.event_id, exc)
            return _answer(
                "stripe",
                503,
                {"error": "unavailable", "message": "event log unavailable, retry later"},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        metrics.count_event("stripe", facts.event_type, 200)
        return _answer("stripe", 200, {"received": True, "id": facts.event_id})

    return [Route("/webhooks/stripe", receive, methods=["POST"])]
