"""--backlog N: raw envelopes produced straight into revenue.raw.v1 (what ingest would have
published), so the processors and sinks can be timed draining a backlog without HTTP in the way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from revstream.bench.events import charge_body
from schemas.envelope import RawEnvelope, Source

CHUNK = 5000


async def _produce(
    bootstrap: str, topic: str, run: str, count: int, progress: Callable[[int, int], None]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    try:
        created = int(time.time())
        received = datetime.now(UTC)
        for start in range(0, count, CHUNK):
            sends = []
            for i in range(start, min(count, start + CHUNK)):
                envelope = RawEnvelope(
                    source=Source.STRIPE,
                    endpoint="default",
                    entity="default",
                    provider_event_id=f"evt_bench{run}x{i}",
                    event_type="charge.succeeded",
                    livemode=False,
                    received_at=received,
                    content_type="application/json",
                    body=charge_body(run, i, created),
                )
                sends.append(
                    await producer.send(topic, envelope.to_bytes(), key=f"ch_bench{run}x{i}".encode())
                )
            await asyncio.gather(*sends)  # acknowledged (acks=all) before the next chunk
            progress(min(count, start + CHUNK), count)
    finally:
        await producer.stop()


def produce_backlog(
    bootstrap: str, topic: str, run: str, count: int, progress: Callable[[int, int], None]
) -> float:
    """Produce `count` envelopes for events of `run`; return the seconds it took."""
    started = time.monotonic()
    asyncio.run(_produce(bootstrap, topic, run, count, progress))
    return time.monotonic() - started
