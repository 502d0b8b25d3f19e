"""Wiring: revenue.events.v1 -> a store, in batches, on a FastStream Kafka broker.

A batch is flushed when `batch_size` messages arrived or `flush_ms` passed, whichever first
(FastStream's max_records / batch_timeout_ms). Order of operations per batch:
1. store.flush() writes the batch durably (one transaction / one insert);
2. only then does the handler return and FastStream commit the offsets.
At least once: a crash between 1 and 2 re-delivers the batch; idempotent upserts make that harmless.
On a store error the handler raises, the batch is sought back (NACK) and retried after a pause.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from schemas.revenue import DerivedEvent
from sinks import metrics

log = logging.getLogger("revstream.sinks")

RETRY_PAUSE_S = 1.0


class BatchStore(Protocol):
    def add(self, derived: Any) -> None: ...

    async def flush(self) -> int: ...


async def record_values(message: StreamMessage[Any]) -> list[bytes]:
    """Hand the handler each record's bytes untouched (FastStream would otherwise guess JSON)."""
    return [record.value or b"" for record in message.raw_message]


def register_sink(
    broker: KafkaBroker,
    *,
    name: str,
    topic: str,
    group_id: str,
    store: BatchStore,
    batch_size: int,
    flush_ms: int,
    decode: Callable[[bytes], Any] = DerivedEvent.from_bytes,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = 500,
) -> None:
    """fetch_*: how long the broker may hold a fetch for more data (revstream.wiring)."""

    @broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=batch_size,
        batch_timeout_ms=flush_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=record_values,
        fetch_min_bytes=fetch_min_bytes,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    async def write_batch(bodies: list[bytes]) -> None:
        for body in bodies:
            store.add(decode(body))
        started = time.perf_counter()
        try:
            written = await store.flush()
        except Exception as exc:
            metrics.STORE_ERRORS.labels(sink=name).inc()
            if name == "postgres":
                metrics.POSTGRES_ERRORS.labels(error=type(exc).__name__).inc()
            log.exception("%s sink: batch write failed; it will be re-delivered", name)
            await asyncio.sleep(RETRY_PAUSE_S)  # explicit pause before the NACK re-delivers the batch
            raise
        metrics.BATCH_SIZE.labels(sink=name).observe(written)
        metrics.FLUSH_SECONDS.labels(sink=name).observe(time.perf_counter() - started)
        metrics.WRITTEN.labels(sink=name).inc(len(bodies))
