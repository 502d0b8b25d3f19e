"""Alert metrics, defined here so the alerting code (issue 5) and the dashboards share one name.

Import and call `count_alert(kind, severity)` once per NEW alert (a deterministic alert id seen
for the first time), so replays do not inflate the count. `kind` must be a rule family such as
"revenue_drop", "refund_rate_spike", "duplicate_charge" or "threshold" (bounded), never an id,
entity or amount. Notifications (Slack posts) are counted by channel and outcome.
"""

from prometheus_client import Counter

ALERTS = Counter(
    "revstream_alerts_total",
    "Alerts raised (first time each deterministic alert id is seen), by kind and severity.",
    ["kind", "severity"],
)
ALERT_NOTIFICATIONS = Counter(
    "revstream_alert_notifications_total",
    "Alert and summary notifications attempted, by channel (slack) and outcome (sent, retried, failed).",
    ["channel", "outcome"],
)


def count_alert(kind: str, severity: str) -> None:
    """Count one newly raised alert."""
    ALERTS.labels(kind=kind, severity=severity).inc()


def count_notification(channel: str, outcome: str) -> None:
    """Count one notification attempt's outcome."""
    ALERT_NOTIFICATIONS.labels(channel=channel, outcome=outcome).inc()
