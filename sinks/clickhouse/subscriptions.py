"""Subscription snapshots in ClickHouse (for MRR over time), and the MRR reads behind the API.

Writes: the snapshots of each batch, one insert (table `subscription_snapshots`, see
deploy/clickhouse/0020_subscription_snapshots.sql). Reads use FINAL plus argMax by
(version, source_event_id), so superseded or duplicated rows never count; MRR movements come from
the view `mrr_movements`, which applies the same rule as schemas.subscriptions.replay_subscription.
"""

from enum import Enum
from typing import Any, TypedDict

from clickhouse_connect.driver.client import Client

from schemas.revenue import DerivedEvent
from schemas.subscriptions import SubscriptionSnapshot
from sinks.clickhouse.client import ClickHouse

SNAPSHOT_COLUMNS = (
    "snapshot_id",
    "subscription_key",
    "subscription_id",
    "source",
    "entity",
    "livemode",
    "customer_id",
    "status",
    "currency",
    "mrr_minor",
    "cancel_at_period_end",
    "occurred_at",
    "version",
    "source_event_id",
    "source_event_type",
)


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return "" if value is None else value


class SubscriptionSnapshotFacts:
    """Buffers the snapshots of derived events; `flush` inserts them as one block and clears the
    buffer in `finally` (Kafka re-delivers the batch on failure; the table collapses duplicates)."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._clickhouse = clickhouse
        self._buffer: list[SubscriptionSnapshot] = []

    def add(self, derived: DerivedEvent) -> None:
        self._buffer.extend(derived.subscription_snapshots)

    async def flush(self) -> int:
        try:
            if not self._buffer:
                return 0
            rows = [[_value(getattr(s, c)) for c in SNAPSHOT_COLUMNS] for s in self._buffer]

            def insert(client: Client) -> None:
                client.insert("subscription_snapshots", rows, column_names=list(SNAPSHOT_COLUMNS))

            await self._clickhouse.run_async(insert)
            return len(rows)
        finally:
            self._buffer.clear()


class RecurringTotals(TypedDict):
    mrr: int
    arr: int
    active_customers: int


# The newest snapshot of every subscription, then sums per {group}. A subscription without a
# customer counts as its own customer.
_CURRENT_MRR_SQL = """
SELECT {group}, sum(s.3) AS mrr, uniqExact(s.4) AS active_customers
FROM (
    SELECT argMax(
               tuple(toString(entity), toString(currency), mrr_minor,
                     if(customer_id = '', subscription_key, customer_id), livemode),
               tuple(version, source_event_id)) AS s
    FROM subscription_snapshots FINAL
    GROUP BY subscription_key
)
WHERE s.5 = {{livemode:Bool}} AND s.3 > 0
GROUP BY {group}
ORDER BY {group}
"""
CURRENT_MRR_BY_ENTITY_SQL = _CURRENT_MRR_SQL.format(group="s.1, s.2")
CURRENT_MRR_SQL = _CURRENT_MRR_SQL.format(group="s.2")

MOVEMENTS_SQL = """
SELECT subscription_key, entity, currency, kind, amount_minor, mrr_before, mrr_after, occurred_at,
       version, source_event_id
FROM mrr_movements
WHERE livemode = {livemode:Bool}
ORDER BY occurred_at, subscription_key, version, source_event_id, kind = 'churn' DESC
"""


def _totals(mrr: Any, customers: Any) -> RecurringTotals:
    return {"mrr": int(mrr), "arr": 12 * int(mrr), "active_customers": int(customers)}


def current_mrr(clickhouse: ClickHouse, livemode: bool) -> dict[str, dict[str, RecurringTotals]]:
    """{entity: {currency: {mrr, arr, active_customers}}} now, integer minor units; ARR = 12 x MRR."""
    out: dict[str, dict[str, RecurringTotals]] = {}
    rows = clickhouse.query_rows(CURRENT_MRR_BY_ENTITY_SQL, {"livemode": livemode})
    for entity, currency, mrr, customers in rows:
        out.setdefault(entity, {})[currency] = _totals(mrr, customers)
    return out


def recurring_totals(clickhouse: ClickHouse, livemode: bool) -> dict[str, RecurringTotals]:
    """Current MRR, ARR and active customers per currency over all entities (for the totals API)."""
    rows = clickhouse.query_rows(CURRENT_MRR_SQL, {"livemode": livemode})
    return {currency: _totals(mrr, customers) for currency, mrr, customers in rows}


def mrr_movements(clickhouse: ClickHouse, livemode: bool) -> list[dict[str, Any]]:
    """Every MRR movement, oldest first (a churn of the old currency before the new currency's start)."""
    columns = (
        "subscription_key",
        "entity",
        "currency",
        "kind",
        "amount_minor",
        "mrr_before",
        "mrr_after",
        "occurred_at",
        "version",
        "source_event_id",
    )
    rows = clickhouse.query_rows(MOVEMENTS_SQL, {"livemode": livemode})
    return [dict(zip(columns, row, strict=True)) for row in rows]
