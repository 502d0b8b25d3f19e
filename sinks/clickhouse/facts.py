"""Writes revenue records to the ClickHouse fact table, idempotently (see the DDL's comment)."""

from enum import Enum
from typing import Any

from clickhouse_connect.driver.client import Client

from schemas.revenue import DerivedEvent, RevenueRecord
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.subscriptions import SubscriptionSnapshotFacts

FACT_COLUMNS = tuple(RevenueRecord.model_fields)


def _value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return "" if value is None else value


class RevenueFactsStore:
    """Buffers the revenue records of derived events with `add`, inserts them with `flush`."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self._clickhouse = clickhouse
        self._buffer: list[RevenueRecord] = []
        self._subscriptions = SubscriptionSnapshotFacts(clickhouse)

    def add(self, derived: DerivedEvent) -> None:
        self._buffer.extend(derived.revenue)
        self._subscriptions.add(derived)

    async def flush(self) -> int:
        """Insert the buffered records as one block; cleared in `finally` (Kafka re-delivers on failure)."""
        try:
            await self._subscriptions.flush()  # its own insert; both tables collapse re-deliveries
            if not self._buffer:
                return 0
            rows = [[_value(getattr(r, c)) for c in FACT_COLUMNS] for r in self._buffer]

            def insert(client: Client) -> None:
                client.insert("revenue_facts", rows, column_names=list(FACT_COLUMNS))

            await self._clickhouse.run_async(insert)
            return len(rows)
        finally:
            self._buffer.clear()
