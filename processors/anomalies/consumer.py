"""Wiring: revenue.events.v1 -> anomaly state + alerts (PostgreSQL) -> revenue.alerts.v1.

Per batch:
1. AnomalyStore.apply commits state, alerts and their Slack outbox rows in one transaction;
2. the relay publishes every alert not yet published (acks=all) and then marks it published;
3. only then does the handler return and FastStream commit the offsets.
At least once: a crash before 1 commits re-delivers the batch and nothing was counted; a crash
between 1 and 2 leaves alerts unpublished, and the next batch (or the start-up) relays them; a
crash between publish and mark re-publishes, which the ClickHouse history collapses by alert_id.
"""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from processors import metrics
from processors.anomalies.store import AnomalyStore, mark_published, unpublished_alerts
from revstream.alert_metrics import count_alert
from schemas.revenue import DerivedEvent

log = logging.getLogger("revstream.anomalies")

RETRY_PAUSE_S = 1.0


async def partition_values(message: StreamMessage[Any]) -> list[tuple[int, bytes]]:
    """Each record's partition (for the per-partition watermark) and its bytes, untouched."""
    return [(record.partition, record.value or b"") for record in message.raw_message]


async def relay_alerts(broker: KafkaBroker, pool: AsyncConnectionPool, topic: str) -> int:
    """Publish alerts the broker has not acknowledged yet; mark them only after the ack."""
    total = 0
    while alerts := await unpublished_alerts(pool):
        await asyncio.gather(
            *(broker.publish(a.to_bytes(), topic=topic, key=a.alert_id.encode()) for a in alerts)
        )
        await mark_published(pool, [a.alert_id for a in alerts])
        total += len(alerts)
    return total


def register_anomaly_processor(
    broker: KafkaBroker,
    *,
    events_topic: str,
    alerts_topic: str,
    group_id: str,
    store: AnomalyStore,
    pool: AsyncConnectionPool,
    batch_size: int,
    flush_ms: int,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = 500,
) -> None:
    @broker.subscriber(
        events_topic,
        group_id=group_id,
        batch=True,
        max_records=batch_size,
        batch_timeout_ms=flush_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=partition_values,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    async def detect(records: list[tuple[int, bytes]]) -> None:
        batch = []
        for partition, body in records:
            try:
                batch.append((partition, DerivedEvent.from_bytes(body)))
            except ValidationError as exc:
                metrics.ANOMALIES_UNREADABLE.inc()
                log.warning("skipping an unreadable derived message: %d validation errors", exc.error_count())
        try:
            new = await store.apply(batch, datetime.now(UTC))
            # Committed: the alerts exist in PostgreSQL; now hand them to the history topic.
            await relay_alerts(broker, pool, alerts_topic)
        except Exception:
            log.exception("anomaly batch failed; it will be re-delivered")
            await asyncio.sleep(RETRY_PAUSE_S)  # explicit pause before the NACK re-delivers the batch
            raise
        for alert in new:
            # Configured rules are named by operators: count them under one bounded kind.
            count_alert("threshold" if alert.rule.startswith("rule:") else alert.rule, alert.severity.value)
            log.info("alert %s: %s", alert.alert_id, alert.title)
