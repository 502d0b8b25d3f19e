"""The read API against real chdb, checked against an independent Python computation over a
generated history of 100,000 revenue records (up to three versions each, 10% duplicate deliveries
and a 10% replay). The API runs in-process (starlette TestClient) with an injected clock."""

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from revstream.query_api import QueryApi, query_routes
from revstream.settings import load_settings
from schemas.fx import FxRate
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.fx import insert_rates
from tests import analytics_history as h

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RECORDS = 100_000
TZ = ZoneInfo("America/Chicago")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    path = tmp_path_factory.mktemp("analytics") / "clickhouse"
    clickhouse = ClickHouse(f"chdb://{path}")
    versions, stream = h.generate(RECORDS)
    h.insert(clickhouse, stream)
    insert_rates(clickhouse, [FxRate(date=d, base=b, quote=q, rate=r) for d, b, q, r in h.RATES])
    settings = load_settings(
        {"REVSTREAM_BUSINESS_TZ": "America/Chicago", "REVSTREAM_REPORTING_CURRENCY": "usd"}
    )
    api = QueryApi(settings, clickhouse, clock=lambda: h.END)
    client = TestClient(Starlette(routes=query_routes(api, with_totals=True)))
    try:
        yield {"clickhouse": clickhouse, "client": client, "versions": versions, "facts": h.latest(versions)}
    finally:
        client.close()
        clickhouse.close()


def test_the_history_really_has_duplicates_and_versions(world: dict[str, Any]) -> None:
    raw = world["clickhouse"].query_rows("SELECT count(), uniqExact(record_id) FROM revenue_facts")[0]
    assert raw[1] == RECORDS and raw[0] > RECORDS * 1.2  # superseded versions and copies are stored


def test_totals_all_time_and_periods(world: dict[str, Any]) -> None:
    facts = [f for f in world["facts"] if f.livemode]
    body = world["client"].get("/api/v1/revenue/totals").json()
    expected = h.per_currency(facts)
    assert body["currencies"] == {
        c: {k: v[k] for k in ("gross", "refunds", "net")} for c, v in expected.items()
    }
    now_local = h.END.astimezone(TZ)
    today = datetime.combine(now_local.date(), datetime.min.time(), tzinfo=TZ)
    starts = {
        "all_time": None,
        "today": today,
        "week_to_date": today - timedelta(days=now_local.weekday()),
        "month_to_date": today.replace(day=1),
    }
    for name, start in starts.items():
        subset = [f for f in facts if start is None or f.occurred_at >= start]
        assert body[name]["from"] == (h.iso(start) if start else None)
        assert body[name]["currencies"] == h.per_currency(subset), name
        assert body[name]["reporting"] == h.reporting(subset, TZ), name
    assert body["all_time"]["reporting"]["missing_rates"], "kwd has no rate and gbp none before March"


def test_totals_test_mode_and_filters(world: dict[str, Any]) -> None:
    facts = [f for f in world["facts"] if not f.livemode and f.entity == "globex" and f.source == "stripe"]
    body = (
        world["client"]
        .get("/api/v1/revenue/totals", params={"livemode": "false", "entity": "globex", "source": "stripe"})
        .json()
    )
    assert body["all_time"]["currencies"] == h.per_currency(facts)


@pytest.mark.parametrize(
    ("interval", "start", "end", "group_by"),
    [
        ("day", "2024-03-01", "2024-04-01", "source,entity"),  # crosses the March DST change (a 23 h day)
        ("hour", "2024-03-09T18:00:00", "2024-03-11T06:00:00", "currency"),
        ("week", "2024-01-01", "2024-06-15", "product"),
        ("month", "2023-12-01", "2024-07-01", None),
    ],
)
def test_trends(world: dict[str, Any], interval: str, start: str, end: str, group_by: str | None) -> None:
    params = {"interval": interval, "from": start, "to": end, **({"group_by": group_by} if group_by else {})}
    response = world["client"].get("/api/v1/revenue/trends", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    lo, hi = (
        datetime.fromisoformat(v if "T" in v else v + "T00:00").replace(tzinfo=TZ) for v in (start, end)
    )
    facts = [f for f in world["facts"] if f.livemode and lo <= f.occurred_at < hi]
    keys = [g for g in (group_by.split(",") if group_by else []) if g != "currency"] + ["currency"]
    step = {"hour": timedelta(hours=1), "day": timedelta(hours=25), "week": timedelta(days=7, hours=1)}
    buckets = [h.bucket_of(lo, interval, TZ)]
    while (following := h.bucket_of(buckets[-1] + step.get(interval, timedelta(days=32)), interval, TZ)) < hi:
        buckets.append(following)
    groups: dict[tuple[Any, ...], dict[datetime, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for f in facts:
        groups[tuple(getattr(f, k) for k in keys)][h.bucket_of(f.occurred_at, interval, TZ)].append(f)
    assert len(body["series"]) == len(groups)
    if interval == "day":
        assert (buckets[10] - buckets[9]) == timedelta(hours=23)  # 2024-03-10
    for series in body["series"]:
        key = tuple(series["key"][k] for k in keys)
        assert [p["start"] for p in series["points"]] == [h.iso(b) for b in buckets]
        previous = None
        for point, bucket in zip(series["points"], buckets, strict=True):
            expected = h.measures(groups[key].get(bucket, []))
            growth = None if not previous else round((expected["net"] - previous) / abs(previous), 6)
            assert point == {"start": h.iso(bucket), **expected, "growth_rate": growth}
            previous = expected["net"]
    # reporting currency: summed across currencies per group and bucket
    rep_keys = keys[:-1]
    rep = {tuple(s["key"][k] for k in rep_keys): s["points"] for s in body["reporting"]["series"]}
    by_group: dict[tuple[Any, ...], dict[datetime, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for f in facts:
        by_group[tuple(getattr(f, k) for k in rep_keys)][h.bucket_of(f.occurred_at, interval, TZ)].append(f)
    assert set(rep) == set(by_group)
    for key, points in rep.items():
        for point, bucket in zip(points, buckets, strict=True):
            expected = h.reporting(by_group[key].get(bucket, []), TZ)
            assert {k: point[k] for k in ("gross", "refunds", "disputes", "net")} == {
                k: expected[k] for k in ("gross", "refunds", "disputes", "net")
            }
    assert body["reporting"]["missing_rates"] == h.reporting(facts, TZ)["missing_rates"]


def _expected_rows(facts: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "record_id": f.record_id,
            "kind": f.kind,
            "source": f.source,
            "entity": f.entity,
            "payment_key": f.payment_key,
            "amount_minor": f.amount_minor,
            "currency": f.currency,
            "livemode": f.livemode,
            "counted": f.counted,
            "status": f.status,
            "customer_id": f.customer_id,
            "product": f.product,
            "occurred_at": h.iso(f.occurred_at),
            "version": f.version,
            "source_event_id": f.source_event_id,
            "source_event_type": f.source_event_type,
        }
        for f in sorted(facts, key=lambda f: (f.occurred_at, f.record_id))
    ]


def test_export_csv_and_json_match_and_stream(world: dict[str, Any]) -> None:
    expected = _expected_rows([f for f in world["facts"] if f.livemode])
    client = world["client"]
    with client.stream("GET", "/api/v1/revenue/export", params={"format": "csv"}) as response:
        assert response.status_code == 200
        chunks = list(response.iter_text())
    assert len(chunks) > 5  # written page by page, never as one body
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(rows) == len(expected)
    as_text = [
        {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in e.items()}
        for e in expected
    ]
    assert rows == as_text
    body = client.get(
        "/api/v1/revenue/export", params={"format": "json", "currency": "eur", "kind": "refund"}
    ).json()
    assert body == [e for e in expected if e["currency"] == "eur" and e["kind"] == "refund"]


def test_pagination_is_complete_and_stable_under_inserts(world: dict[str, Any]) -> None:
    client, clickhouse = world["client"], world["clickhouse"]
    params = {"currency": "usd", "limit": "1000"}
    expected = [
        e["record_id"]
        for e in _expected_rows([f for f in world["facts"] if f.livemode and f.currency == "usd"])
    ]
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get(
            "/api/v1/revenue/events", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [e["record_id"] for e in body["events"]]
        cursor = body["next_cursor"]
        if len(seen) == 2000:  # mid-way: one record lands behind the cursor, one ahead of it
            last = datetime.fromisoformat(body["events"][-1]["occurred_at"])
            new_rows = [
                [f"new:{name}", "payment", "stripe", "acme", "pi_new", 100, "usd", True, True, "succeeded"]
                + ["", None, at, 1, "evt_new", "x"]
                for name, at in (
                    ("behind", last - timedelta(days=1)),
                    ("ahead", h.END - timedelta(minutes=1)),
                )
            ]
            clickhouse.run(lambda c, rows=new_rows: c.insert("revenue_facts", rows, column_names=h._COLUMNS))
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "no record is served twice"
    assert "new:behind" not in seen and "new:ahead" in seen
    assert [r for r in seen if not r.startswith("new:")] == expected
    clickhouse.run(
        lambda c: c.command(
            "ALTER TABLE revenue_facts DELETE WHERE record_id LIKE 'new:%' SETTINGS mutations_sync = 1"
        )
    )


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/v1/revenue/trends", {"interval": "fortnight"}, "interval"),
        ("/api/v1/revenue/trends", {"group_by": "customer"}, "group_by"),
        ("/api/v1/revenue/trends", {"from": "2024-02-01", "to": "2024-01-01"}, "from must be earlier"),
        ("/api/v1/revenue/trends", {"interval": "hour", "from": "2020-01-01"}, "buckets"),
        ("/api/v1/revenue/trends", {"from": "yesterday"}, "from"),
        ("/api/v1/revenue/totals", {"livemode": "perhaps"}, "livemode"),
        ("/api/v1/revenue/totals", {"reporting_currency": "dollars"}, "reporting_currency"),
        ("/api/v1/revenue/events", {"limit": "0"}, "limit"),
        ("/api/v1/revenue/events", {"cursor": "not-a-cursor"}, "cursor"),
        ("/api/v1/revenue/events", {"sort": "desc"}, "unknown parameter 'sort'"),
        ("/api/v1/revenue/export", {"format": "xml"}, "format"),
        ("/api/v1/revenue/export", {"source": "paypal"}, "source"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    world: dict[str, Any], path: str, params: dict[str, str], fragment: str
) -> None:
    response = world["client"].get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert fragment in response.json()["message"]


def test_openapi_and_docs(world: dict[str, Any]) -> None:
    spec = world["client"].get("/openapi.json").json()
    trends = spec["paths"]["/api/v1/revenue/trends"]["get"]
    names = {p["name"] for p in trends["parameters"]}
    assert {"interval", "from", "to", "group_by", "livemode", "reporting_currency"} <= names
    assert "/api/v1/revenue/export" in spec["paths"] and "/api/v1/revenue/events" in spec["paths"]
    assert "swagger-ui" in world["client"].get("/docs").text


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_queries() -> list[str]:
    """The SQL blocks of the README's analyst section, exactly as written there."""
    text = README.read_text()
    section = text[text.index("### Example queries") :]
    return [block.split("```", 1)[0].strip() for block in section.split("```sql\n")[1:6]]


def test_the_five_readme_queries_run_and_agree(world: dict[str, Any]) -> None:
    from sinks.clickhouse.readonly import run_readonly

    queries = readme_queries()
    assert len(queries) == 5
    results = [run_readonly(world["clickhouse"], q) for q in queries]
    live = [f for f in world["facts"] if f.livemode]
    # 1: net per currency, all time, live
    assert {r[0]: r[3] for r in results[0].rows} == {c: v["net"] for c, v in h.per_currency(live).items()}
    # 3: rates per source and currency; 4: the top customer; 5: the latest rate of every pair
    assert {(r[0], r[1]) for r in results[2].rows} == {(f.source, f.currency) for f in live}
    eur = defaultdict(int)
    for f in live:
        if f.currency == "eur" and f.kind == "payment" and f.counted and f.customer_id:
            eur[f.customer_id] += f.amount_minor
    top = sorted(eur.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(r[0], r[2]) for r in results[3].rows] == top
    latest = {}
    for day, base, quote, rate in sorted(h.RATES):
        latest[(base, quote)] = (str(rate), day.isoformat())
    assert {(r[0], r[1]): (r[2], r[3]) for r in results[4].rows} == {
        k: (str(Decimal(v[0]).quantize(Decimal(10) ** -18)), v[1]) for k, v in latest.items()
    }
