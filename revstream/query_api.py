"""The read API over ClickHouse: totals, trends, events (keyset pages), streamed export, analysts'
read-only SQL, and the FX-rate write the `fx load` command uses when chdb belongs to this process.

Reads need `Authorization: Bearer <REVSTREAM_API_TOKEN>` when that is set (the admin token works
too); writes need REVSTREAM_ADMIN_TOKEN and are refused while it is unset. Times in responses are
UTC; day / week / month boundaries come from REVSTREAM_BUSINESS_TZ. A bad parameter is a 400 that
names it; no response ever carries a stack trace.
"""

import asyncio
import base64
import binascii
import csv
import hmac
import io
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from revstream.query_params import (
    DEFAULT_SPAN,
    BadRequest,
    EventsParams,
    ExportParams,
    TotalsParams,
    TrendsParams,
    bucket_starts,
    fact_filter,
    iso_utc,
    parse,
    period_starts,
    time_range,
)
from revstream.settings import Settings
from schemas.fx import FxRateBatch
from sinks.clickhouse.analytics import (
    EVENT_COLUMNS,
    MEASURES,
    FactFilter,
    Reporting,
    events_page,
    missing_rates_list,
    money_block,
    period_totals,
    ratio,
    trend_rows,
)
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.fx import insert_rates
from sinks.clickhouse.readonly import QueryFailed, ReadOnlyViolation, run_readonly

EXPORT_PAGE = 10_000
MAX_WRITE_BYTES = 16 * 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Clock = Callable[[], datetime]


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _bearer(request: Request) -> str | None:
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    return supplied.strip() if scheme.lower() == "bearer" else None


def _matches(supplied: str | None, token: str | None) -> bool:
    return (
        supplied is not None and token is not None and hmac.compare_digest(supplied.encode(), token.encode())
    )


class QueryApi:
    """The handlers, bound to one ClickHouse connection, the settings and a clock (injected in tests)."""

    def __init__(self, settings: Settings, clickhouse: ClickHouse, clock: Clock | None = None) -> None:
        self.clickhouse = clickhouse
        self.tz_name = settings.business_tz
        self.tz = ZoneInfo(settings.business_tz)
        self.reporting_currency = settings.reporting_currency
        self.api_token = settings.api_token.get_secret_value() if settings.api_token else None
        self.admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        self.clock: Clock = clock or (lambda: datetime.now(UTC))

    # -- auth ------------------------------------------------------------------------------
    def read_denied(self, request: Request) -> JSONResponse | None:
        if self.api_token is None:
            return None
        supplied = _bearer(request)
        if _matches(supplied, self.api_token) or _matches(supplied, self.admin_token):
            return None
        return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_API_TOKEN>")

    def write_denied(self, request: Request) -> JSONResponse | None:
        if self.admin_token is None:
            return _error(
                403, "writes_disabled", "writes are disabled: set REVSTREAM_ADMIN_TOKEN on the server"
            )
        if _matches(_bearer(request), self.admin_token):
            return None
        return _error(401, "unauthorized", "send Authorization: Bearer <REVSTREAM_ADMIN_TOKEN>")

    # -- totals ----------------------------------------------------------------------------
    def totals_body(self, query: Mapping[str, str]) -> dict[str, Any]:
        """All-time, today, week-to-date and month-to-date figures (BadRequest on bad parameters).
        `currencies` keeps its original shape: {currency: {gross, refunds, net}}, all time."""
        params: TotalsParams = parse(TotalsParams, query)
        now = self.clock().astimezone(UTC)
        reporting = params.reporting_currency or self.reporting_currency
        periods = period_starts(now, self.tz)
        # No upper bound: a fact stamped a moment ahead of this clock still counts, as it always did.
        flt = fact_filter(params, None, None)
        figures = period_totals(self.clickhouse, flt, periods, self.tz_name, reporting)
        body: dict[str, Any] = {
            "livemode": params.livemode,
            "currencies": {
                currency: {"gross": v["gross"], "refunds": v["refunds"], "net": v["net"]}
                for currency, v in figures["all_time"]["currencies"].items()
            },
            "as_of": iso_utc(now),
            "timezone": self.tz_name,
            "reporting_currency": reporting,
        }
        for name, start in periods.items():
            body[name] = {"from": iso_utc(start) if start else None, "to": iso_utc(now), **figures[name]}
        return body

    async def totals(self, request: Request) -> Response:
        if (denied := self.read_denied(request)) is not None:
            return denied
        try:
            body = await asyncio.to_thread(self.totals_body, request.query_params)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(body)

    # -- trends ----------------------------------------------------------------------------
    def trends_body(self, query: Mapping[str, str]) -> dict[str, Any]:
        params: TrendsParams = parse(TrendsParams, query)
        now = self.clock().astimezone(UTC)
        start, end = time_range(params, self.tz, now, DEFAULT_SPAN[params.interval])
        assert start is not None and end is not None
        buckets = bucket_starts(start, end, params.interval, self.tz)
        groups = params.group_by.split(",") if params.group_by else []
        reporting = params.reporting_currency or self.reporting_currency
        rows = trend_rows(
            self.clickhouse, fact_filter(params, start, end), params.interval, groups, self.tz_name, reporting
        )
        keys = [g for g in groups if g != "currency"] + ["currency"]
        body: dict[str, Any] = {
            "interval": params.interval,
            "timezone": self.tz_name,
            "from": iso_utc(start),
            "to": iso_utc(end),
            "livemode": params.livemode,
            "group_by": groups,
            "series": _series(rows, keys, buckets),
        }
        if reporting is not None:
            body["reporting"] = _reporting_series(
                rows, [k for k in keys if k != "currency"], buckets, reporting
            )
        return body

    async def trends(self, request: Request) -> Response:
        if (denied := self.read_denied(request)) is not None:
            return denied
        try:
            body = await asyncio.to_thread(self.trends_body, request.query_params)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(body)

    # -- events ----------------------------------------------------------------------------
    def events_body(self, query: Mapping[str, str]) -> dict[str, Any]:
        params: EventsParams = parse(EventsParams, query)
        start, end = time_range(params, self.tz, self.clock(), None)
        after = decode_cursor(params.cursor) if params.cursor else None
        flt = fact_filter(params, start, end, params.kind)
        rows = events_page(self.clickhouse, flt, after, params.limit + 1)
        page = rows[: params.limit]
        more = len(rows) > params.limit
        return {
            "events": [event_json(r) for r in page],
            "next_cursor": encode_cursor(page[-1]) if more and page else None,
            "limit": params.limit,
        }

    async def events(self, request: Request) -> Response:
        if (denied := self.read_denied(request)) is not None:
            return denied
        try:
            body = await asyncio.to_thread(self.events_body, request.query_params)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(body)

    # -- export ----------------------------------------------------------------------------
    async def export(self, request: Request) -> Response:
        if (denied := self.read_denied(request)) is not None:
            return denied
        try:
            params: ExportParams = parse(ExportParams, request.query_params)
            start, end = time_range(params, self.tz, self.clock(), None)
        except BadRequest as exc:
            return _error(400, "bad_request", str(exc))
        flt = fact_filter(params, start, end, params.kind)
        if params.format == "csv":
            return StreamingResponse(
                self._csv(flt),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="revenue-events.csv"'},
            )
        return StreamingResponse(
            self._json(flt),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="revenue-events.json"'},
        )

    async def _pages(self, flt: FactFilter) -> AsyncIterator[list[dict[str, Any]]]:
        """Keyset pages of EXPORT_PAGE rows: memory stays constant whatever the export's size, and
        the ClickHouse connection is free between pages (the sink keeps writing)."""
        after: tuple[int, str] | None = None
        while True:
            rows = await asyncio.to_thread(events_page, self.clickhouse, flt, after, EXPORT_PAGE)
            if rows:
                yield rows
            if len(rows) < EXPORT_PAGE:
                return
            after = (int(rows[-1]["occurred_ms"]), str(rows[-1]["record_id"]))

    async def _csv(self, flt: FactFilter) -> AsyncIterator[str]:
        yield ",".join(EVENT_COLUMNS) + "\r\n"
        async for rows in self._pages(flt):
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for row in rows:
                event = event_json(row)
                writer.writerow(["" if event[c] is None else _csv_cell(event[c]) for c in EVENT_COLUMNS])
            yield buffer.getvalue()

    async def _json(self, flt: FactFilter) -> AsyncIterator[str]:
        yield "["
        first = True
        async for rows in self._pages(flt):
            chunk = ",\n".join(json.dumps(event_json(r), separators=(",", ":")) for r in rows)
            yield ("\n" if first else ",\n") + chunk
            first = False
        yield "\n]\n"

    # -- analysts' SQL ---------------------------------------------------------------------
    async def sql(self, request: Request) -> Response:
        if (denied := self.read_denied(request)) is not None:
            return denied
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "bad_request", 'send JSON: {"query": "SELECT ..."}')
        query = payload.get("query") if isinstance(payload, dict) else None
        if not isinstance(query, str):
            return _error(400, "bad_request", 'send JSON: {"query": "SELECT ..."}')
        try:
            result = await asyncio.to_thread(run_readonly, self.clickhouse, query)
        except ReadOnlyViolation as exc:
            return _error(400, "not_read_only", str(exc))
        except QueryFailed as exc:
            return _error(400, "query_failed", str(exc))
        return JSONResponse(
            {
                "columns": result.columns,
                "types": result.types,
                "rows": result.rows,
                "truncated": result.truncated,
            }
        )

    # -- FX rates (write) ------------------------------------------------------------------
    async def fx_rates(self, request: Request) -> Response:
        if (denied := self.write_denied(request)) is not None:
            return denied
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WRITE_BYTES:
            return _error(413, "body_too_large", f"body is larger than {MAX_WRITE_BYTES} bytes")
        try:
            batch = FxRateBatch.model_validate_json(await request.body())
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            return _error(400, "bad_request", f"{where}: {err['msg']}")
        loaded = await asyncio.to_thread(insert_rates, self.clickhouse, batch.rates)
        return JSONResponse({"loaded": loaded})


# -- shaping -------------------------------------------------------------------------------
def _csv_cell(value: Any) -> Any:
    return "true" if value is True else "false" if value is False else value


def event_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """One fact for clients: occurred_at as UTC ISO 8601 with milliseconds."""
    out = {c: row[c] for c in EVENT_COLUMNS if c != "occurred_at"}
    out["occurred_at"] = iso_utc(EPOCH + timedelta(milliseconds=int(row["occurred_ms"])))
    out["amount_minor"] = int(out["amount_minor"])
    out["version"] = int(out["version"])
    out["livemode"], out["counted"] = bool(out["livemode"]), bool(out["counted"])
    return {c: out[c] for c in EVENT_COLUMNS}


def encode_cursor(row: Mapping[str, Any]) -> str:
    raw = json.dumps([int(row["occurred_ms"]), str(row["record_id"])], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        occurred_ms, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor this API issued (use next_cursor as given)") from None
    if type(occurred_ms) is not int or not isinstance(record_id, str):
        raise BadRequest("cursor: not a cursor this API issued (use next_cursor as given)")
    return occurred_ms, record_id


_ZERO = {name: 0 for name, _, _ in MEASURES}


def _growth(current: int, previous: int | None) -> float | None:
    """Net growth against the previous bucket; None without a previous bucket or when it was 0."""
    if previous is None or previous == 0:
        return None
    return round((current - previous) / abs(previous), 6)


def _series(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], buckets: Sequence[datetime]) -> list[Any]:
    by_key: dict[tuple[Any, ...], dict[int, Mapping[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(tuple(row[k] for k in keys), {})[int(row["bucket"])] = row
    series = []
    for key in sorted(by_key, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        points, previous = [], None
        for start in buckets:
            block = money_block(by_key[key].get(int(start.timestamp()), _ZERO))
            points.append({"start": iso_utc(start), **block, "growth_rate": _growth(block["net"], previous)})
            previous = block["net"]
        series.append({"key": dict(zip(keys, key, strict=True)), "points": points})
    return series


def _reporting_series(
    rows: Sequence[Mapping[str, Any]], keys: Sequence[str], buckets: Sequence[datetime], currency: str
) -> dict[str, Any]:
    sums: dict[tuple[Any, ...], dict[int, Reporting]] = {}
    missing = Reporting(currency)
    for row in rows:
        key = tuple(row[k] for k in keys)
        sums.setdefault(key, {}).setdefault(int(row["bucket"]), Reporting(currency)).add(row)
        missing.add(row)
    series = []
    for key in sorted(sums, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        points, previous = [], None
        for start in buckets:
            rep = sums[key].get(int(start.timestamp()), Reporting(currency))
            net = rep.gross - rep.refunds - rep.disputes
            points.append(
                {
                    "start": iso_utc(start),
                    "gross": rep.gross,
                    "refunds": rep.refunds,
                    "disputes": rep.disputes,
                    "net": net,
                    "refund_rate": ratio(rep.refunds, rep.gross),
                    "growth_rate": _growth(net, previous),
                }
            )
            previous = net
        series.append({"key": dict(zip(keys, key, strict=True)), "points": points})
    return {
        "currency": currency,
        "series": series,
        "missing_rates": missing_rates_list(missing.missing, currency),
    }


def query_routes(api: QueryApi, with_totals: bool = False) -> list[Route]:
    """The read API's routes plus /openapi.json and /docs (totals is served by revstream/api.py,
    which builds its body with `QueryApi.totals_body`; `with_totals` adds this module's own)."""
    from revstream.openapi import openapi_routes

    totals = [Route("/api/v1/revenue/totals", api.totals, methods=["GET"])] if with_totals else []
    return [
        *totals,
        Route("/api/v1/revenue/trends", api.trends, methods=["GET"]),
        Route("/api/v1/revenue/events", api.events, methods=["GET"]),
        Route("/api/v1/revenue/export", api.export, methods=["GET"]),
        Route("/api/v1/sql", api.sql, methods=["POST"]),
        Route("/api/v1/fx/rates", api.fx_rates, methods=["POST"]),
        *openapi_routes(),
    ]
