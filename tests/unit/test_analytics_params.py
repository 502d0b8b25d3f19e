"""Parameter validation of the read API, the read-only SQL guard and the FX file parser: pure logic."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from revstream.fx import FxFileError, parse_rates
from revstream.query_api import decode_cursor, encode_cursor
from revstream.query_params import (
    BadRequest,
    EventsParams,
    ExportParams,
    TotalsParams,
    TrendsParams,
    bucket_starts,
    parse,
    period_starts,
    time_range,
)
from sinks.clickhouse.readonly import ReadOnlyViolation, checked_statement

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2024, 6, 15, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "query", "fragment"),
    [
        (TrendsParams, {"interval": "year"}, "interval"),
        (TrendsParams, {"group_by": "source,customer"}, "group_by"),
        (TrendsParams, {"group_by": ","}, "group_by"),
        (TrendsParams, {"livemode": "maybe"}, "livemode"),
        (TrendsParams, {"currency": "dollars"}, "currency"),
        (TotalsParams, {"reporting_currency": "us"}, "reporting_currency"),
        (TotalsParams, {"source": "paypal"}, "source"),
        (TotalsParams, {"entity": ""}, "entity"),
        (EventsParams, {"limit": "1001"}, "limit"),
        (EventsParams, {"limit": "ten"}, "limit"),
        (EventsParams, {"kind": "Payment; DROP"}, "kind"),
        (ExportParams, {"format": "xlsx"}, "format"),
        (ExportParams, {"page": "2"}, "unknown parameter 'page'"),
    ],
)
def test_bad_parameters_name_the_parameter(model: type, query: dict[str, str], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment.replace("(", r"\(")):
        parse(model, query)


def test_good_parameters_normalize() -> None:
    params = parse(
        TrendsParams, {"currency": "EUR", "group_by": "source, entity,source", "livemode": "false"}
    )
    assert (params.currency, params.group_by, params.livemode) == ("eur", "source,entity", False)
    assert parse(TotalsParams, {"reporting_currency": "USD"}).reporting_currency == "usd"


def test_time_range_reads_dates_and_naive_times_in_the_business_zone() -> None:
    params = parse(TrendsParams, {"from": "2024-03-10", "to": "2024-03-11T12:00:00Z"})
    start, end = time_range(params, CHICAGO, NOW, timedelta(days=30))
    assert start == datetime(2024, 3, 10, 6, tzinfo=UTC)  # CST midnight
    assert end == datetime(2024, 3, 11, 12, tzinfo=UTC)
    start, end = time_range(parse(TrendsParams, {}), CHICAGO, NOW, timedelta(days=30))
    assert (start, end) == (NOW - timedelta(days=30), NOW)
    for bad in ({"from": "2024-02-30"}, {"from": "soon"}, {"from": "2024-05-02", "to": "2024-05-01"}):
        with pytest.raises(BadRequest):
            time_range(parse(TrendsParams, bad), CHICAGO, NOW, timedelta(days=30))


def test_day_buckets_follow_dst_and_weeks_start_monday() -> None:
    days = bucket_starts(
        datetime(2024, 3, 9, 6, tzinfo=UTC), datetime(2024, 3, 12, 5, tzinfo=UTC), "day", CHICAGO
    )
    assert [b.hour for b in days] == [6, 6, 5]  # CST, CST (23 h day), CDT
    weeks = bucket_starts(
        datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 20, tzinfo=UTC), "week", CHICAGO
    )
    assert [b.astimezone(CHICAGO).strftime("%a %d") for b in weeks] == ["Mon 29", "Mon 06", "Mon 13"]
    months = bucket_starts(
        datetime(2023, 11, 15, tzinfo=UTC), datetime(2024, 2, 1, 6, tzinfo=UTC), "month", CHICAGO
    )
    assert [b.astimezone(CHICAGO).strftime("%Y-%m-%d") for b in months] == [
        "2023-11-01",
        "2023-12-01",
        "2024-01-01",
    ]
    with pytest.raises(BadRequest, match="buckets"):
        bucket_starts(datetime(2020, 1, 1, tzinfo=UTC), NOW, "hour", CHICAGO)


def test_periods_start_in_the_business_zone() -> None:
    periods = period_starts(datetime(2024, 6, 15, 3, tzinfo=UTC), CHICAGO)  # still Friday the 14th there
    assert periods["today"] == datetime(2024, 6, 14, 5, tzinfo=UTC)
    assert periods["week_to_date"] == datetime(2024, 6, 10, 5, tzinfo=UTC)
    assert periods["month_to_date"] == datetime(2024, 6, 1, 5, tzinfo=UTC)
    assert periods["all_time"] is None


def test_cursor_round_trip_and_rejects_forgeries() -> None:
    cursor = encode_cursor({"occurred_ms": 1714647600000, "record_id": "stripe:payment:pi_1"})
    assert decode_cursor(cursor) == (1714647600000, "stripe:payment:pi_1")
    for bad in ("", "!!!", "e30", "WyJhIiwiYiJd"):  # empty, not base64, {}, ["a","b"]
        with pytest.raises(BadRequest, match="cursor"):
            decode_cursor(bad)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "  with x AS (SELECT 1) SELECT * FROM x;",
        "SHOW TABLES",
        "DESCRIBE TABLE revenue_facts",
        "SELECT formatDateTime(now(), '%F') -- a comment",
    ],
)
def test_read_only_statements_get_readonly_settings_on_their_own_line(query: str) -> None:
    statement = checked_statement(query)
    assert statement.endswith("readonly = 1")
    assert "\nSETTINGS " in statement


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "empty"),
        ("INSERT INTO fx_rates VALUES (1)", "only SELECT"),
        ("DROP TABLE revenue_facts", "only SELECT"),
        ("SELECT 1; DROP TABLE revenue_facts", "one statement"),
        ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
        ("SELECT 1 FORMAT CSV", "FORMAT"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "OUTFILE"),
        ("SELECT 1 /* SETTINGS */", "block comments"),
    ],
)
def test_anything_but_a_read_is_refused(query: str, fragment: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=fragment):
        checked_statement(query)


def test_fx_file_parses_and_normalizes() -> None:
    rates = parse_rates("date,base,quote,rate\n2024-05-02,EUR,usd,1.0712\n\n2024-05-01,gbp,USD, 1.25 \n")
    assert [(r.date.isoformat(), r.base, r.quote, r.rate) for r in rates] == [
        ("2024-05-02", "eur", "usd", Decimal("1.0712")),
        ("2024-05-01", "gbp", "usd", Decimal("1.25")),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "line 1"),
        ("day,from,to,rate\n", "line 1"),
        ("date,base,quote,rate\n", "no rates"),
        ("date,base,quote,rate\n2024-05-01,eur,usd\n", "line 2: expected 4 fields"),
        ("date,base,quote,rate\n2024-13-01,eur,usd,1.1\n", "line 2: date"),
        ("date,base,quote,rate\n2024-05-01,euro,usd,1.1\n", "line 2: base"),
        ("date,base,quote,rate\n2024-05-01,eur,eur,1.1\n", "differ"),
        ("date,base,quote,rate\n2024-05-01,eur,usd,0\n", "line 2: rate"),
        ("date,base,quote,rate\n2024-05-01,eur,usd,1.1234567890123456789\n", "line 2: rate"),
        ("date,base,quote,rate\n2024-05-01,eur,usd,1.1\n2024-05-01,eur,usd,1.2\n", "line 3: eur->usd"),
    ],
)
def test_fx_file_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(FxFileError, match=fragment.replace("(", r"\(")):
        parse_rates(text)


def test_business_zone_and_reporting_currency_settings() -> None:
    from revstream.settings import SettingsError, load_settings

    settings = load_settings(
        {"REVSTREAM_BUSINESS_TZ": "Europe/Berlin", "REVSTREAM_REPORTING_CURRENCY": "EUR"}
    )
    assert (settings.business_tz, settings.reporting_currency) == ("Europe/Berlin", "eur")
    assert load_settings({}).business_tz == "America/Chicago"
    with pytest.raises(SettingsError, match="REVSTREAM_BUSINESS_TZ"):
        load_settings({"REVSTREAM_BUSINESS_TZ": "Mars/Olympus"})
    with pytest.raises(SettingsError, match="REVSTREAM_REPORTING_CURRENCY"):
        load_settings({"REVSTREAM_REPORTING_CURRENCY": "dollar"})
