"""Writes FX rates to ClickHouse fx_rates (ReplacingMergeTree by pair + date, newest load wins)."""

from collections.abc import Sequence
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from schemas.fx import FxRate
from sinks.clickhouse.client import ClickHouse


def insert_rates(clickhouse: ClickHouse, rates: Sequence[FxRate], loaded_at: datetime | None = None) -> int:
    """Insert one block; reloading a (base, quote, date) replaces its rate on read (argMax loaded_at)."""
    stamp = loaded_at or datetime.now(UTC)
    rows = [[r.base, r.quote, r.date, r.rate, stamp] for r in rates]

    def insert(client: Client) -> None:
        client.insert("fx_rates", rows, column_names=["base", "quote", "date", "rate", "loaded_at"])

    if rows:
        clickhouse.run(insert)
    return len(rows)
