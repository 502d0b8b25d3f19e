"""Wiring: revenue.raw.v1 -> derive -> revenue.events.v1, on a FastStream Kafka broker.

Offsets are committed only after every derived message of the batch was acknowledged by the
broker (at least once: a crash before the commit re-derives the batch into the same
deterministic records, which the sinks' upserts absorb).
"""

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from pydantic import ValidationError

from processors import metrics
from processors.dedupe import RecentIds
from processors.revenue.derive import derive
from schemas.dead_letter import DeadLetter
from schemas.envelope import RawEnvelope
from schemas.revenue import EventState
from schemas.topics import Topics

log = logging.getLogger("revstream.processor")


async def record_values(message: StreamMessage[Any]) -> list[bytes]:
    """Hand the handler each record's bytes untouched (FastStream would otherwise guess JSON)."""
    return [record.value or b"" for record in message.raw_message]


def register_revenue_processor(
    broker: KafkaBroker, topics: Topics, group_id: str, batch_size: int, flush_ms: int
) -> None:
    recent = RecentIds()
    revenue_counter = metrics.RevenueCounter()

    def dead_letter(reason: str, payload: bytes):  # noqa: ANN202 - an awaitable publish
        metrics.DEAD_LETTERED.labels(stage="processor").inc()
        letter = DeadLetter(
            reason=reason, topic=topics.raw, stage="processor", failed_at=datetime.now(UTC), payload=payload
        )
        return broker.publish(letter.to_bytes(), topic=topics.dlq)

    @broker.subscriber(
        topics.raw,
        group_id=group_id,
        batch=True,
        max_records=batch_size,
        batch_timeout_ms=flush_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=record_values,
    )
    async def process_raw(bodies: list[bytes]) -> None:
        started = time.perf_counter()
        sends = []
        derived_keys: list[str] = []
        in_batch: set[str] = set()
        outputs = []
        for body in bodies:
            try:
                envelope = RawEnvelope.from_bytes(body)
            except ValidationError as exc:
                sends.append(dead_letter(f"not a raw envelope: {exc.error_count()} validation errors", body))
                continue
            dedupe_key = envelope.dedupe_key
            if recent.seen(dedupe_key) or dedupe_key in in_batch:
                metrics.DEDUPLICATED.inc()
                continue
            derived = derive(envelope)
            metrics.PROCESSED.labels(state=derived.event.state.value).inc()
            if derived.event.state is EventState.FAILED:
                log.warning("could not derive %s: %s", dedupe_key, derived.event.error)
                sends.append(dead_letter(derived.event.error or "derivation failed", body))
            key = derived.revenue[0].payment_key if derived.revenue else envelope.provider_event_id
            sends.append(broker.publish(derived.to_bytes(), topic=topics.events, key=key.encode()))
            in_batch.add(dedupe_key)
            if derived.event.state is not EventState.FAILED:  # a replay after a fix must not be dropped
                derived_keys.append(dedupe_key)
            outputs.append(derived)
        try:
            await asyncio.gather(*sends)
        except Exception:
            metrics.PUBLISH_ERRORS.inc()
            raise  # NACK: the batch is re-delivered and re-derived into the same records
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        # Published and acknowledged: only now may the ids count as seen (never claim before success).
        for key in derived_keys:
            recent.remember(key)
        for derived in outputs:
            revenue_counter.observe(derived)
