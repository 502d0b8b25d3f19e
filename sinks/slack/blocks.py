"""Block Kit messages for alerts and summaries (pure). Slack's limits are kept: header text
<= 150 characters, section text <= 3000, a field <= 2000, at most 10 fields and 50 blocks."""

from collections.abc import Iterable
from typing import Any

from schemas.alerts import Alert, Severity
from schemas.money import format_money

MAX_BLOCKS = 50
RULE_LABELS = {
    "revenue_drop": "Revenue drop",
    "revenue_spike": "Revenue spike",
    "refund_rate_spike": "Refund rate spike",
    "dispute_rate_spike": "Dispute rate spike",
    "failed_payment_rate_spike": "Failed payment rate spike",
    "duplicate_charge": "Possible duplicate charge",
}


def escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) as entities, so data never becomes markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, 150), "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _fields(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{k}*\n{escape(v)}", 2000)} for k, v in list(pairs)[:10]
        ],
    }


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, 3000)}]}


def rule_label(rule: str) -> str:
    if rule.startswith("rule:"):
        return f"Rule {rule.removeprefix('rule:')}"
    return RULE_LABELS.get(rule, rule)


def _value(value: int | None, unit: str, currency: str) -> str:
    if value is None:
        return "n/a"
    if unit == "minor_units" and currency:
        return format_money(value, currency)
    if unit == "ppm":
        return f"{value / 10_000:.1f}%"
    return f"{value:,}"


def alert_message(alert: Alert) -> dict[str, Any]:
    """One alert: what, how far from usual, when (UTC), and how to acknowledge it."""
    icon = ":rotating_light:" if alert.severity is Severity.CRITICAL else ":warning:"
    mode = "live" if alert.livemode else "TEST MODE"
    window = f"{alert.window_start:%Y-%m-%d %H:%M} – {alert.window_end:%Y-%m-%d %H:%M} UTC"
    fields = [
        ("Observed", _value(alert.observed, alert.unit, alert.currency)),
        (
            "Expected" if not alert.rule.startswith("rule:") else "Threshold",
            _value(alert.expected, alert.unit, alert.currency),
        ),
        ("Window", window),
        ("Severity", alert.severity.value),
        ("Entity", alert.entity),
        ("Mode", mode),
    ]
    return {
        "text": f"{icon} {alert.title}",
        "blocks": [
            _header(f"{rule_label(alert.rule)} · {alert.entity}{'' if alert.livemode else ' (test mode)'}"),
            _section(f"{icon} {escape(alert.title)}"),
            _fields(fields),
            _context(
                f"alert `{alert.alert_id}` · rule `{escape(alert.rule)}` · acknowledge with "
                f"`POST /api/v1/alerts/{alert.alert_id}/acknowledge`"
            ),
        ],
    }


def _change(minor: int, currency: str) -> str:
    if minor == 0:
        return "unchanged"
    arrow = ":arrow_up_small:" if minor > 0 else ":arrow_down_small:"
    sign = "+" if minor > 0 else ""
    return f"{arrow} {sign}{format_money(minor, currency)}"


def summary_message(body: dict[str, Any]) -> dict[str, Any]:
    """A daily or weekly summary: revenue per entity and source, movements, events, alerts."""
    kind = "Daily" if body["kind"] == "daily" else "Weekly"
    title = f"{kind} revenue summary · {body['label']}"
    blocks: list[dict[str, Any]] = [
        _header(f":bar_chart: {title}"),
        _context(
            f"{escape(body['start'])} → {escape(body['end'])} (business day boundaries in {escape(body['timezone'])}), live money"
        ),
    ]
    by_source: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in body["revenue"]:
        by_source.setdefault((line["entity"], line["source"]), []).append(line)
    sections = []
    for (entity, source), lines in sorted(by_source.items()):
        text = [f"*{escape(entity)}* · {escape(source)}"]
        for line in lines:
            cur = line["currency"]
            text.append(
                f"{cur.upper()}: gross {format_money(line['gross_minor'], cur)} ({line['payments']} payments) · "
                f"refunds {format_money(line['refunds_minor'], cur)} ({line['refunds']}) · "
                f"net *{format_money(line['net_minor'], cur)}* ({_change(line['change_minor'], cur)} vs previous)"
            )
        sections.append(_section("\n".join(text)))
    if not sections:
        sections.append(_section("No live revenue in this period."))
    room = MAX_BLOCKS - len(blocks) - 5
    blocks += sections[:room]
    if len(sections) > room:
        blocks.append(
            _context(f"…and {len(sections) - room} more entity/source lines (stored in revenue_summaries)")
        )
    blocks.append({"type": "divider"})
    movements = [
        f"• {escape(m['entity'])} / {escape(m['source'])}: {_change(m['change_minor'], m['currency'])} "
        f"(net {format_money(m['net_minor'], m['currency'])})"
        for m in body["movements"]
    ]
    blocks.append(_section("*Biggest movements*\n" + ("\n".join(movements) or "none")))
    events: dict[str, int] = {}
    for e in body["events"]:
        events[e["state"]] = events.get(e["state"], 0) + e["count"]
    event_text = " · ".join(f"{state}: {n:,}" for state, n in sorted(events.items())) or "none"
    alert_text = " · ".join(f"{rule_label(a['rule'])}: {a['count']}" for a in body["alerts"]) or "none"
    blocks.append(_section(f"*Events received* {event_text}\n*Alerts* {escape(alert_text)}"))
    return {"text": title, "blocks": blocks}
