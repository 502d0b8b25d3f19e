"""POST /api/v1/manual-entries: offline revenue (purchase orders, contracts) typed in by operators.

Writes need `Authorization: Bearer <REVSTREAM_ADMIN_TOKEN>` and an `Idempotency-Key` header.
The entry is validated, its key claimed (ingest/idempotency.py), then enveloped and published
like a webhook: 200 only after Kafka's ack, 503 + Retry-After otherwise. The answer depends only
on the entity and key, so a retried request gets the same answer.
"""

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.auth import bearer_matches
from ingest.http import (
    RETRY_AFTER_S,
    UNBOUNDED,
    Admission,
    _answer,
    _read_limited,
    media_type,
    publish_or_503,
    refuse,
    shed,
)
from ingest.idempotency import Claim, IdempotencyKeys
from ingest.rejections import Rejected
from schemas.envelope import RawEnvelope, Source
from schemas.manual import IDEMPOTENCY_KEY_PATTERN, ManualEntry, describe_errors

SOURCE = Source.MANUAL.value
log = logging.getLogger("revstream.ingest")


def manual_event_id(entity: str, key: str) -> str:
    """The provider event id of a manual entry: unique per entity and idempotency key."""
    return f"{entity}:{key}"


def parse_entry(body: bytes) -> ManualEntry:
    """Validate a manual entry; Rejected(422) lists each problem by field, never echoing input."""
    try:
        return ManualEntry.model_validate_json(body)
    except ValidationError as exc:
        raise Rejected(422, "invalid_entry", describe_errors(exc)) from None


def canonical_sha256(entry: ManualEntry, entity: str) -> str:
    """Hash of what the entry means, not how it was typed (whitespace and key order don't count)."""
    canonical = json.dumps(
        {**entry.model_dump(mode="json"), "entity": entity}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def manual_entry_routes(
    *,
    admin_token: str | None,
    default_entity: str,
    keys: IdempotencyKeys | None,
    publisher,  # noqa: ANN001 - ingest.publisher.RawPublisher
    max_body_bytes: int,
    admission: Admission = UNBOUNDED,
    clock: Callable[[], float] = time.time,
) -> list[Route]:
    async def create(request: Request) -> Response:
        if admin_token is None or keys is None:
            # Never fail open: without an admin token, operator writes do not exist.
            return _answer(SOURCE, 404, {"error": "not_found", "message": "manual entries are disabled"})
        if not bearer_matches(request, admin_token):
            return refuse(SOURCE, Rejected(401, "unauthorized", "send Authorization: Bearer <admin token>"))
        if not admission.try_enter():
            return shed(SOURCE)
        try:
            return await _create(request, keys)
        finally:
            admission.leave()

    async def _create(request: Request, keys: IdempotencyKeys) -> Response:
        try:
            key = request.headers.get("idempotency-key", "")
            if not re.match(IDEMPOTENCY_KEY_PATTERN, key):
                raise Rejected(
                    400,
                    "bad_idempotency_key",
                    "an Idempotency-Key header is required: 1-200 of A-Z a-z 0-9 . _ : -",
                )
            if media_type(request) != "application/json":
                raise Rejected(415, "unsupported_media_type", "Content-Type must be application/json")
            body = await _read_limited(request, max_body_bytes)
            entry = parse_entry(body)
        except Rejected as rejected:
            return refuse(SOURCE, rejected)
        except ClientDisconnect:
            return _answer(SOURCE, 400, {"error": "client_disconnected"})

        entity = entry.entity or default_entity
        event_id = manual_event_id(entity, key)
        try:
            claim = await keys.claim(entity, key, canonical_sha256(entry, entity), event_id)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("idempotency store unavailable (%s): answered 503", type(exc).__name__)
            return _answer(
                SOURCE,
                503,
                {"error": "unavailable", "message": "state store unavailable, retry later"},
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        if claim is Claim.CONFLICT:
            return refuse(
                SOURCE,
                Rejected(
                    409, "idempotency_conflict", "this Idempotency-Key was already used with another body"
                ),
            )
        envelope = RawEnvelope(
            source=Source.MANUAL,
            endpoint="api",
            entity=entity,
            provider_event_id=event_id,
            event_type=f"manual.{entry.kind}",
            livemode=entry.livemode,
            received_at=datetime.fromtimestamp(clock(), UTC),
            content_type="application/json",
            body=body,
        )
        response = await publish_or_503(
            publisher, envelope, event_id.encode(), {"received": True, "id": event_id}
        )
        if claim is Claim.REPEAT:
            response.headers["Idempotent-Replayed"] = "true"  # as Stripe's API does; the body is unchanged
        return response

    return [Route("/api/v1/manual-entries", create, methods=["POST"])]
