"""OpenAPI 3.1 description of the read API (/openapi.json) and a Swagger UI page (/docs).

Query parameters come from the same pydantic models that validate requests
(revstream/query_params.py), so the document always matches what the server enforces.
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from revstream.query_params import EventsParams, ExportParams, TotalsParams, TrendsParams, _Params

COMPONENTS_REF = "#/components/schemas/{model}"

ERROR = {
    "description": "Bad parameter: the message names it",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    },
}
UNAUTHORIZED = {"description": "REVSTREAM_API_TOKEN is set and the bearer token is missing or wrong"}

MONEY = (
    "Money is integer minor units of the currency (cents; yen for jpy). gross = counted payments, "
    "refunds and disputes = money out, net = gross - refunds - disputes. refund_rate = refunds / gross, "
    "dispute_rate = disputes / payments (count), failed_payment_rate = failed / (payments + failed). "
    "Every figure comes from deduplicated facts (one row per record id), so replays never change it."
)

ENDPOINTS: list[tuple[str, str, str, str, type[_Params] | None, str]] = [
    (
        "/api/v1/revenue/totals",
        "get",
        "Revenue totals: all time, today, week to date, month to date",
        "Per currency, plus `reporting` in the reporting currency when one is set. `currencies` (all "
        "time: gross, refunds, net) is kept for existing clients. Periods start at midnight, Monday and "
        "the 1st in the business time zone; `from`/`to` are UTC. " + MONEY,
        TotalsParams,
        "Totals: {livemode, currencies, as_of, timezone, reporting_currency, all_time, today, "
        "week_to_date, month_to_date}; each period {from, to, currencies: {cur: figures}, reporting?: "
        "{currency, gross, refunds, disputes, net, missing_rates: [{base, quote, first_date, last_date, "
        "records_excluded}]}}",
    ),
    (
        "/api/v1/revenue/trends",
        "get",
        "Revenue per time bucket, grouped, with growth rates",
        "One series per group and currency; every bucket in the range is present (zeros included). "
        "growth_rate = (net - previous net) / |previous net|, null for the first bucket or after a zero. "
        "A fact lands in the bucket of its latest version's event time. " + MONEY,
        TrendsParams,
        "{interval, timezone, from, to, livemode, group_by, series: [{key, points: [{start, gross, "
        "refunds, disputes, net, payments, ..., growth_rate}]}], reporting?: {currency, series, missing_rates}}",
    ),
    (
        "/api/v1/revenue/events",
        "get",
        "Revenue records (latest version of each), keyset-paginated",
        "Ordered by (occurred_at, record_id). Pass next_cursor back as `cursor` for the next page; the "
        "cursor is a position, not an offset, so records inserted meanwhile never shift or repeat the "
        "pages still to come (records that arrive behind the cursor are not revisited).",
        EventsParams,
        "{events: [{record_id, kind, source, entity, payment_key, amount_minor, currency, livemode, "
        "counted, status, customer_id, product, occurred_at, version, source_event_id, "
        "source_event_type}], next_cursor, limit}",
    ),
    (
        "/api/v1/revenue/export",
        "get",
        "Every matching record as CSV or JSON, streamed",
        "Same records, order and columns as /events, streamed page by page: any size, constant memory.",
        ExportParams,
        "text/csv (header row first) or a JSON array",
    ),
    (
        "/api/v1/sql",
        "post",
        "Analysts' read-only SQL (what `revstream sql` uses)",
        'Body {"query": "SELECT ..."}: one SELECT / WITH / SHOW / DESCRIBE statement, run by ClickHouse '
        "with readonly = 1, at most 100000 rows. 400 not_read_only or query_failed with ClickHouse's message.",
        None,
        "{columns, types, rows, truncated}",
    ),
    (
        "/api/v1/fx/rates",
        "post",
        "Load FX rates into ClickHouse (what `revstream fx load` uses)",
        'Needs REVSTREAM_ADMIN_TOKEN (403 while unset). Body {"rates": [{"date": "2024-05-01", "base": '
        '"eur", "quote": "usd", "rate": "1.0712"}]}: 1 base = rate quote from that date on.',
        None,
        "{loaded}",
    ),
]


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for path, method, summary, description, model, returns in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": summary,
            "description": description,
            "responses": {"200": {"description": returns}, "400": ERROR, "401": UNAUTHORIZED},
            "security": [{"bearer": []}],
        }
        if model is not None:
            schema = model.model_json_schema(by_alias=True, ref_template=COMPONENTS_REF)
            components.update(schema.pop("$defs", {}))
            required = set(schema.get("required", []))
            operation["parameters"] = [
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "description": prop.pop("description", ""),
                    "schema": prop,
                }
                for name, prop in schema["properties"].items()
            ]
        else:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "revstream query API",
            "version": "1",
            "description": "Revenue analytics over ClickHouse. Times are UTC (ISO 8601); days, weeks "
            "(Monday) and months follow REVSTREAM_BUSINESS_TZ.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>revstream API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"><p>Interactive docs load Swagger UI from cdn.jsdelivr.net; the raw
description is at <a href="/openapi.json">/openapi.json</a>.</p></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


def openapi_routes() -> list[Route]:
    document = openapi_document()

    async def spec(_: Request) -> JSONResponse:
        return JSONResponse(document)

    async def docs(_: Request) -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    return [Route("/openapi.json", spec, methods=["GET"]), Route("/docs", docs, methods=["GET"])]
