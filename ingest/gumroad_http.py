"""POST /webhooks/gumroad/{token}: Gumroad pings (form-encoded or JSON).

Gumroad does not sign pings, so a ping is authentic when its URL carries our secret token
(compared in constant time) and, for sale-type resources, its `seller_id` is on the allow-list.
Answers:
- 404 when the token is wrong OR Gumroad is not configured: the two are indistinguishable, so a
  prober learns nothing (the route is always mounted for that reason);
- 415 wrong content type, 413 too large, 400 malformed or unidentifiable, 403 seller not allowed;
- 200 only after Kafka acknowledged the envelope, 503 + Retry-After otherwise (Gumroad retries
  499/500/502/503/504 with `retry_count`; those retries dedupe on the same provider event id).
Subscription resources carry no `seller_id` (Gumroad sends the subscription, not the sale), so
for them the token is the only credential.
"""

import hmac
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ingest import metrics
from ingest.http import (
    UNBOUNDED,
    Admission,
    _answer,
    _read_limited,
    bounded_content_type,
    media_type,
    publish_or_503,
    refuse,
    shed,
)
from ingest.publisher import RawPublisher
from ingest.rejections import Rejected
from schemas.envelope import RawEnvelope, Source
from schemas.gumroad import FORM, JSON, PingError, identify, parse_ping

SOURCE = Source.GUMROAD.value


@dataclass(frozen=True)
class GumroadConfig:
    """`secret` None disables the route (404). `seller_ids` must not be empty when it is set."""

    secret: str | None
    seller_ids: Collection[str]
    entity: str
    max_body_bytes: int
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.secret is not None and not self.seller_ids:
            raise ValueError("a Gumroad secret without a seller_id allow-list would accept any seller")


def _token_matches(supplied: str, secret: str | None) -> bool:
    if secret is None:
        return False
    return hmac.compare_digest(supplied.encode(), secret.encode())


def gumroad_routes(
    config: GumroadConfig, publisher: RawPublisher, admission: Admission = UNBOUNDED
) -> list[Route]:
    allowed = frozenset(config.seller_ids)

    async def receive(request: Request) -> Response:
        if not _token_matches(request.path_params.get("token", ""), config.secret):
            metrics.REJECTIONS.labels(source=SOURCE, reason="not_found").inc()
            return _answer(SOURCE, 404, {"error": "not_found", "message": "no such webhook endpoint"})
        if not admission.try_enter():
            return shed(SOURCE)
        try:
            return await _accept(request)
        finally:
            admission.leave()

    async def _accept(request: Request) -> Response:
        try:
            content_type = bounded_content_type(request.headers.get("content-type", ""))
            kind = media_type(request)
            if kind not in (FORM, JSON):
                raise Rejected(415, "unsupported_media_type", f"Content-Type must be {FORM} or {JSON}")
            body = await _read_limited(request, config.max_body_bytes)
            try:
                ping = identify(parse_ping(body, kind))
            except PingError as exc:
                raise Rejected(400, "malformed_body", str(exc)) from None
            if ping.seller_id is not None and ping.seller_id not in allowed:
                raise Rejected(403, "seller_not_allowed", "seller_id is not on this endpoint's allow-list")
        except Rejected as rejected:
            return refuse(SOURCE, rejected)
        except ClientDisconnect:
            return _answer(SOURCE, 400, {"error": "client_disconnected"})

        envelope = RawEnvelope(
            source=Source.GUMROAD,
            endpoint="default",
            entity=config.entity,
            provider_event_id=ping.event_id,
            event_type=ping.resource,
            livemode=ping.livemode,
            received_at=datetime.fromtimestamp(config.clock(), UTC),
            content_type=content_type,
            body=body,
        )
        return await publish_or_503(
            publisher, envelope, ping.object_key.encode(), {"received": True, "id": ping.event_id}
        )

    return [Route("/webhooks/gumroad/{token}", receive, methods=["POST"])]
