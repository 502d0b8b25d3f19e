"""The query API (read side): revenue totals from ClickHouse, behind an optional bearer token."""

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from revstream.query_api import QueryApi, query_routes
from revstream.query_params import BadRequest
from revstream.settings import Settings
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.queries import revenue_totals
from sinks.clickhouse.subscriptions import recurring_totals


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.encode(), token.encode())


def _livemode(request: Request) -> bool | None:
    value = request.query_params.get("livemode", "true").lower()
    return {"true": True, "1": True, "false": False, "0": False}.get(value)


def api_routes(settings: Settings, clickhouse: ClickHouse) -> list[Route]:
    token = settings.api_token.get_secret_value() if settings.api_token else None
    queries = QueryApi(settings, clickhouse)

    async def totals(request: Request) -> JSONResponse:
        if not _authorized(request, token):
            return JSONResponse(
                {"error": "unauthorized", "message": "send Authorization: Bearer <REVSTREAM_API_TOKEN>"},
                status_code=401,
            )
        livemode = _livemode(request)
        if livemode is None:
            return JSONResponse({"error": "bad_request", "message": "livemode must be true or false"}, 400)
        try:
            body = await asyncio.to_thread(queries.totals_body, request.query_params)
        except BadRequest as exc:
            return JSONResponse({"error": "bad_request", "message": str(exc)}, 400)
        # `currencies` is the all-time ledger view for this livemode (and entity): refunds per payment
        # are max(listed refunds, charge totals) capped at the charge, plus disputes, fees and failed
        # payments (sinks/clickhouse/queries.py). The period blocks apply every filter.
        entity = request.query_params.get("entity") or None
        body["currencies"] = await asyncio.to_thread(revenue_totals, clickhouse, livemode, entity)
        # Current MRR, ARR and active customers per currency (subscriptions), same livemode.
        body["recurring"] = await asyncio.to_thread(recurring_totals, clickhouse, livemode)
        return JSONResponse(body)

    return [Route("/api/v1/revenue/totals", totals, methods=["GET"]), *query_routes(queries)]
