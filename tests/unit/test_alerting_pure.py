"""Pure pieces of alerting: summary schedule, Slack answer classification, Block Kit limits, money."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx

from processors.summaries.schedule import due_periods, latest_due_day, latest_due_week
from schemas.alerts import Alert, Severity
from schemas.money import format_money
from sinks.slack.blocks import alert_message, summary_message
from sinks.slack.poster import backoff, classify, retry_after

TZ = ZoneInfo("America/Chicago")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)  # type: ignore[misc]


def test_daily_due_at_six_local_weekly_on_mondays() -> None:
    assert latest_due_day(at(2024, 6, 5, 5, 59), TZ) == date(2024, 6, 3)
    assert latest_due_day(at(2024, 6, 5, 6, 0), TZ) == date(2024, 6, 4)
    assert latest_due_week(at(2024, 6, 10, 5, 59), TZ) == date(2024, 5, 27)  # Monday before 06:00
    assert latest_due_week(at(2024, 6, 10, 6, 0), TZ) == date(2024, 6, 3)


def test_dst_day_is_23_hours_and_catch_up_is_capped() -> None:
    (period,) = [p for p in due_periods(at(2024, 3, 11, 7, 0), TZ, date(2024, 3, 9), date(2024, 3, 4), 7)]
    assert period.label == "2024-03-10" and (period.end - period.start).total_seconds() == 23 * 3600
    due = due_periods(at(2024, 6, 30, 7, 0), TZ, date(2024, 1, 1), date(2024, 1, 1), 3)
    assert [p.label for p in due if p.kind.value == "daily"] == ["2024-06-27", "2024-06-28", "2024-06-29"]
    assert [p.label for p in due if p.kind.value == "weekly"] == ["2024-W25"]


def test_slack_answers() -> None:
    assert classify(httpx.Response(200, text="ok"), 1).state == "sent"
    limited = classify(httpx.Response(429, headers={"Retry-After": "7"}), 1)
    assert limited.state == "retry" and limited.pause_all and limited.retry_in is not None
    assert limited.retry_in.total_seconds() == 7
    assert classify(httpx.Response(503), 3).retry_in == backoff(3)
    assert classify(httpx.Response(400, text="invalid_blocks"), 1).state == "failed"
    assert retry_after(None) == retry_after("soon") == 30.0
    assert backoff(1).total_seconds() == 2 and backoff(30).total_seconds() == 300


def test_block_kit_limits_hold_for_huge_content() -> None:
    start = datetime(2024, 6, 5, tzinfo=UTC)
    alert = Alert(
        alert_id="alert_x",
        rule="rule:big",
        severity=Severity.WARNING,
        entity="e" * 300,
        currency="jpy",
        livemode=False,
        window_start=start,
        window_end=start,
        title="t" * 5000,
        observed=1234,
        expected=1000,
        unit="minor_units",
    )
    message = alert_message(alert)
    header = message["blocks"][0]["text"]["text"]
    assert len(header) <= 150 and len(message["blocks"][1]["text"]["text"]) <= 3000
    assert "1,234 JPY" in str(message["blocks"][2])
    body = {
        "kind": "weekly",
        "label": "2024-W23",
        "timezone": "UTC",
        "start": "s",
        "end": "e",
        "alerts": [],
        "events": [],
        "movements": [],
        "revenue": [
            {
                "entity": f"e{i}",
                "source": "stripe",
                "currency": "usd",
                "payments": 1,
                "gross_minor": 1,
                "refunds": 0,
                "refunds_minor": 0,
                "net_minor": 1,
                "previous_net_minor": 0,
                "change_minor": 1,
            }
            for i in range(80)
        ],
    }
    assert len(summary_message(body)["blocks"]) <= 50


def test_money_formatting_is_exact() -> None:
    assert format_money(123456789, "usd") == "1,234,567.89 USD"
    assert format_money(5, "jpy") == "5 JPY"
    assert format_money(-1005, "kwd") == "-1.005 KWD"
