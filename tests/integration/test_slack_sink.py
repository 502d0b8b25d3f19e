"""The Slack sink (`revstream run slack`) against a local stand-in for Slack: Block Kit content,
a 429 with Retry-After honoured, and a restart that never repeats a post (a message caught
mid-post by a crash is marked uncertain, not re-sent)."""

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from processors.anomalies.store import INSERT_ALERT, alert_row
from processors.summaries.build import build_summary
from processors.summaries.schedule import daily_period
from schemas.alerts import Alert, Severity, alert_id
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints
from tests.slack_stub import slack_stub

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def make_alert(n: int) -> Alert:
    start = NOW.replace(minute=0, second=0) - timedelta(hours=n)
    return Alert(
        alert_id=alert_id("revenue_drop", start, f"shop|usd|True|{n}"),
        rule="revenue_drop",
        severity=Severity.CRITICAL,
        entity="shop",
        currency="usd",
        livemode=True,
        window_start=start,
        window_end=start + timedelta(hours=1),
        title=f"Revenue drop #{n}: 12.00 USD in the hour, usually 480.00 USD <shop & co>",
        observed=1200,
        expected=48000,
        unit="minor_units",
        details={"payments": 1},
    )


def enqueue_alert(database_url: str, alert: Alert, state: str = "pending") -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(INSERT_ALERT, alert_row(alert))
        conn.execute(
            "INSERT INTO slack_outbox (message_id, kind, ref, subject_time, state) VALUES (%s, 'alert', %s, %s, %s)",
            (f"alert:{alert.alert_id}", alert.alert_id, alert.window_end, state),
        )


def enqueue_summary(database_url: str) -> None:
    period = daily_period((NOW - timedelta(days=1)).date(), ZoneInfo("America/Chicago"))
    body = build_summary(
        period,
        [("shop", "stripe", "usd", "payment", 3, 15000), ("shop", "stripe", "usd", "refund", 1, 500)],
        [("shop", "stripe", "usd", "payment", 2, 9000)],
        [("shop", "stripe", True, "processed", 4)],
        [("revenue_drop", 1)],
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO revenue_summaries (summary_id, kind, label, period_start, period_end, timezone, body) "
            "VALUES (%s, 'daily', %s, %s, %s, %s, %s)",
            (
                "daily:" + period.label,
                period.label,
                period.start,
                period.end,
                period.timezone,
                psycopg.types.json.Jsonb(body),
            ),
        )
        conn.execute(
            "INSERT INTO slack_outbox (message_id, kind, ref, subject_time) VALUES (%s, 'summary', %s, %s)",
            ("summary:daily:" + period.label, "daily:" + period.label, period.end),
        )


def states(pipeline: Pipeline) -> dict[str, str]:
    return dict(pipeline.sql("SELECT message_id, state FROM slack_outbox"))  # type: ignore[arg-type]


def wait_states(pipeline: Pipeline, expected: dict[str, str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(states(pipeline).get(k) == v for k, v in expected.items()):
            return
        time.sleep(0.2)
    raise AssertionError(f"outbox states {states(pipeline)}, wanted {expected}\n{pipeline.log_tail('slack')}")


def stop(pipeline: Pipeline, name: str) -> None:
    proc = pipeline.procs[name]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_slack_posts_block_kit_honours_429_and_never_repeats(
    services: ServiceEndpoints, tmp_path: Path
) -> None:
    pipeline = Pipeline(services, tmp_path)
    try:
        with slack_stub() as slack:
            slack.script = [(429, {"Retry-After": "2"})]
            pipeline.env["SLACK_WEBHOOK_URL"] = slack.url
            first = make_alert(1)
            enqueue_alert(pipeline.database_url, first)
            enqueue_summary(pipeline.database_url)
            pipeline.start("slack")

            posts = slack.wait_for(3)
            wait_states(pipeline, {f"alert:{first.alert_id}": "sent"})
            # The 429 was honoured: the same message again, no sooner than Retry-After, and nothing in between.
            assert [p.answered for p in posts[:3]] == [429, 200, 200]
            assert posts[0].body == posts[1].body
            assert posts[1].received_at - posts[0].received_at >= 2.0
            assert all(p.path == "/services/T0/B0/not-a-real-secret" for p in posts)

            alert_post, summary_post = posts[1].body, posts[2].body
            assert alert_post["text"].startswith(":rotating_light: Revenue drop #1")
            header, section, fields, context = alert_post["blocks"]
            assert header["type"] == "header" and header["text"]["type"] == "plain_text"
            assert header["text"]["text"] == "Revenue drop · shop"
            assert "&lt;shop &amp; co&gt;" in section["text"]["text"]  # data never becomes Slack markup
            shown = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in fields["fields"]}
            assert shown["*Observed*"] == "12.00 USD" and shown["*Expected*"] == "480.00 USD"
            assert first.alert_id in context["elements"][0]["text"]
            assert summary_post["text"].startswith("Daily revenue summary")
            kinds = [b["type"] for b in summary_post["blocks"]]
            assert kinds[0] == "header" and "divider" in kinds and len(kinds) <= 50
            text = " ".join(
                b.get("text", {}).get("text", "") for b in summary_post["blocks"] if b["type"] == "section"
            )
            assert "net *145.00 USD*" in text and "+55.00 USD" in text and "processed: 4" in text

            # Restart: nothing is posted again. A message a crash caught mid-post is not re-sent
            # (uncertain); a new one is posted once.
            stop(pipeline, "slack")
            caught = make_alert(2)
            enqueue_alert(pipeline.database_url, caught, state="sending")
            later = make_alert(3)
            enqueue_alert(pipeline.database_url, later)
            pipeline.start("slack")
            wait_states(
                pipeline, {f"alert:{later.alert_id}": "sent", f"alert:{caught.alert_id}": "uncertain"}
            )
            time.sleep(2)  # a few more polls: nothing else may be posted
            assert len(slack.posts) == 4
            assert "Revenue drop #3" in slack.posts[3].body["text"]
            stop(pipeline, "slack")
            log = (tmp_path / "slack.log").read_text()
            assert "not-a-real-secret" not in log and "/services/T0" not in log
    finally:
        pipeline.stop_all()
