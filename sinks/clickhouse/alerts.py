"""revenue.alerts.v1 -> ClickHouse `revenue_alerts` (history), in batches.

Write first, then FastStream commits the offsets (at least once: a crash in between re-delivers
the batch, and ReplacingMergeTree collapses the copies by alert_id; see the DDL).
"""

import asyncio
import json
import logging
from typing import Any

from clickhouse_connect.driver.client import Client
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from schemas.alerts import Alert
from sinks import metrics
from sinks.clickhouse.client import ClickHouse
from sinks.consumer import RETRY_PAUSE_S, record_values

log = logging.getLogger("revstream.sinks.alerts")

ALERT_COLUMNS = (
    "alert_id",
    "rule",
    "severity",
    "entity",
    "currency",
    "livemode",
    "window_start",
    "window_end",
    "title",
    "observed",
    "expected",
    "unit",
    "details",
)


def alert_row(alert: Alert) -> list[Any]:
    values = alert.model_dump(mode="python")
    values["severity"] = alert.severity.value
    values["details"] = json.dumps(alert.details, sort_keys=True, default=str)
    return [values[c] for c in ALERT_COLUMNS]


def write_alerts(clickhouse: ClickHouse, alerts: list[Alert]) -> int:
    rows = [alert_row(a) for a in {a.alert_id: a for a in alerts}.values()]
    if rows:

        def insert(client: Client) -> None:
            client.insert("revenue_alerts", rows, column_names=list(ALERT_COLUMNS))

        clickhouse.run(insert)
    return len(rows)


def register_alert_history_sink(
    broker: KafkaBroker, *, topic: str, group_id: str, clickhouse: ClickHouse, batch_size: int, flush_ms: int
) -> None:
    @broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=batch_size,
        batch_timeout_ms=flush_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=record_values,
    )
    async def write_batch(bodies: list[bytes]) -> None:
        alerts = []
        for body in bodies:
            try:
                alerts.append(Alert.from_bytes(body))
            except ValidationError as exc:
                log.warning("skipping an unreadable alert message: %d validation errors", exc.error_count())
        try:
            await asyncio.to_thread(write_alerts, clickhouse, alerts)
        except Exception:
            metrics.STORE_ERRORS.labels(sink="clickhouse-alerts").inc()
            log.exception("alert history write failed; the batch will be re-delivered")
            await asyncio.sleep(RETRY_PAUSE_S)
            raise
