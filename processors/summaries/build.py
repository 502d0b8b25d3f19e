"""Query rows -> a summary body (pure). Money stays integer minor units per currency."""

from collections.abc import Iterable
from typing import Any

from schemas.alerts import SummaryPeriod

MOVEMENTS_PER_CURRENCY = 3

# (entity, source, currency, kind, count, sum_minor) from the ledger
RevenueRow = tuple[str, str, str, str, int, int]
# (entity, source, livemode, state, count) from webhook_events
EventRow = tuple[str, str, bool, str, int]


def _totals(rows: Iterable[RevenueRow]) -> dict[tuple[str, str, str], dict[str, int]]:
    totals: dict[tuple[str, str, str], dict[str, int]] = {}
    for entity, source, currency, kind, count, minor in rows:
        line = totals.setdefault(
            (entity, source, currency), {"payments": 0, "gross_minor": 0, "refunds": 0, "refunds_minor": 0}
        )
        if kind == "payment":
            line["payments"] += int(count)
            line["gross_minor"] += int(minor)
        elif kind == "refund":
            line["refunds"] += int(count)
            line["refunds_minor"] += int(minor)
    return totals


def build_summary(
    period: SummaryPeriod,
    current: Iterable[RevenueRow],
    previous: Iterable[RevenueRow],
    events: Iterable[EventRow],
    alerts: Iterable[tuple[str, int]],
) -> dict[str, Any]:
    """The stored (and posted) summary: revenue per entity/source/currency with the change
    against the period before, event counts, the biggest movements and the alerts raised."""
    now_totals, before = _totals(current), _totals(previous)
    revenue: list[dict[str, Any]] = []
    for key in sorted(set(now_totals) | set(before)):
        line = now_totals.get(key) or {"payments": 0, "gross_minor": 0, "refunds": 0, "refunds_minor": 0}
        prior = before.get(key, {"gross_minor": 0, "refunds_minor": 0})
        net = line["gross_minor"] - line["refunds_minor"]
        previous_net = prior["gross_minor"] - prior["refunds_minor"]
        entity, source, currency = key
        revenue.append(
            {
                "entity": entity,
                "source": source,
                "currency": currency,
                **line,
                "net_minor": net,
                "previous_net_minor": previous_net,
                "change_minor": net - previous_net,
            }
        )
    movements = []
    for currency in sorted({line["currency"] for line in revenue}):
        moved = [line for line in revenue if line["currency"] == currency and line["change_minor"]]
        moved.sort(key=lambda line: (-abs(line["change_minor"]), line["entity"], line["source"]))
        movements += [
            {
                k: line[k]
                for k in ("entity", "source", "currency", "net_minor", "previous_net_minor", "change_minor")
            }
            for line in moved[:MOVEMENTS_PER_CURRENCY]
        ]
    return {
        "kind": period.kind.value,
        "label": period.label,
        "timezone": period.timezone,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "livemode": True,
        "revenue": revenue,
        "movements": movements,
        "events": [
            {"entity": e, "source": s, "livemode": lm, "state": st, "count": int(n)}
            for e, s, lm, st, n in sorted(events)
        ],
        "alerts": [{"rule": rule, "count": int(n)} for rule, n in sorted(alerts)],
    }
