"""Operator endpoints for webhook event records: list and inspect (read token), replay (admin).

GET  /api/v1/webhook-events?state=failed&source=stripe&type=...&limit=50&cursor=...
GET  /api/v1/webhook-events/{source}/{provider_event_id}
POST /api/v1/webhook-events/{source}/{provider_event_id}/replay

A replay re-publishes the archived raw envelope onto revenue.raw.v1 (acknowledged by Kafka
before the answer); the processor derives it again into the same deterministic records, so a
replay after a fix repairs state and a replay of a healthy event changes nothing.
"""

import base64
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingest.auth import bearer_matches
from ingest.http import RETRY_AFTER_S, publish_or_503
from schemas.envelope import Source
from sinks.postgres.webhook_events import WebhookEvents

STATES = ("received", "processed", "ignored", "failed")
MAX_LIMIT = 500


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def encode_cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["received_at"].isoformat(), row["provider_event_id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        when, event_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(when), str(event_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


def webhook_event_routes(
    *,
    read_token: str | None,
    admin_token: str | None,
    events: WebhookEvents,
    publisher,  # noqa: ANN001 - ingest.publisher.RawPublisher
) -> list[Route]:
    def can_read(request: Request) -> bool:
        # The admin token reads too; with no read token set, reads are open (like the totals API).
        if admin_token is not None and bearer_matches(request, admin_token):
            return True
        return read_token is None or bearer_matches(request, read_token)

    async def guarded(request: Request, handler: Any) -> Response:
        try:
            return await handler(request)
        except (psycopg.Error, PoolTimeout):
            return _error(
                503,
                "unavailable",
                "state store unavailable, retry later",
                {"Retry-After": str(RETRY_AFTER_S)},
            )

    async def list_events(request: Request) -> Response:
        if not can_read(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_API_TOKEN>")
        params = request.query_params
        state, source = params.get("state"), params.get("source")
        if state is not None and state not in STATES:
            return _error(400, "bad_request", f"state must be one of {', '.join(STATES)}")
        if source is not None and source not in {s.value for s in Source}:
            return _error(400, "bad_request", f"source must be one of {', '.join(s.value for s in Source)}")
        limit_text = params.get("limit", "50")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            return _error(400, "bad_request", f"limit must be 1..{MAX_LIMIT}")
        try:
            before = decode_cursor(params["cursor"]) if "cursor" in params else None
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        limit = int(limit_text)

        async def run(_: Request) -> Response:
            rows = await events.list(
                state=state, source=source, event_type=params.get("type"), before=before, limit=limit
            )
            cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
            return JSONResponse({"events": [_jsonable(r) for r in rows], "next_cursor": cursor})

        return await guarded(request, run)

    async def show_event(request: Request) -> Response:
        if not can_read(request):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_API_TOKEN>")

        async def run(_: Request) -> Response:
            row = await events.get(request.path_params["source"], request.path_params["event_id"])
            if row is None:
                return _error(404, "not_found", "no such webhook event")
            return JSONResponse(_jsonable(row))

        return await guarded(request, run)

    async def replay(request: Request) -> Response:
        if admin_token is None:
            return _error(404, "not_found", "replays are disabled: set REVSTREAM_ADMIN_TOKEN")
        if not bearer_matches(request, admin_token):
            return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_ADMIN_TOKEN>")

        async def run(_: Request) -> Response:
            source, event_id = request.path_params["source"], request.path_params["event_id"]
            envelope = await events.take_for_replay(source, event_id)
            if envelope is None:
                return _error(404, "not_found", "no archived webhook event with that source and id")
            key = envelope.provider_event_id.encode()
            body = {"replayed": True, "id": event_id, "attempt": envelope.replay}
            return await publish_or_503(publisher, envelope, key, body)

        return await guarded(request, run)

    return [
        Route("/api/v1/webhook-events", list_events, methods=["GET"]),
        Route("/api/v1/webhook-events/{source}/{event_id}", show_event, methods=["GET"]),
        Route("/api/v1/webhook-events/{source}/{event_id}/replay", replay, methods=["POST"]),
    ]
