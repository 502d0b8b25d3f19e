"""Wiring: revenue.raw.v1 -> derive -> revenue.events.v1, on a FastStream Kafka broker.

Offsets are committed only after every derived message and dead letter of the batch was
acknowledged by the broker (at least once: a crash before the commit re-derives the batch into
the same deterministic records, which the sinks' upserts absorb).
"""

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from pydantic import ValidationError

from processors import metrics
from processors.dedupe import RecentIds
from processors.kafka_batch import broker_producer, publish_keyed, wait_all
from processors.revenue.derive import derive
from schemas.dead_letter import DeadLetter
from schemas.envelope import RawEnvelope
from schemas.revenue import DerivedEvent, EventState
from schemas.topics import Topics

log = logging.getLogger("revstream.processor")

PublishKeyed = Callable[[str, Iterable[tuple[bytes, bytes]]], Awaitable[None]]
"""Publishes (key, value) messages to a topic; returns once the broker acknowledged all of them."""
PublishLetter = Callable[[bytes], Awaitable[Any]]
"""Publishes one dead letter; the awaitable completes once the broker acknowledged it."""

_FAILED = EventState.FAILED


async def record_values(message: StreamMessage[Any]) -> list[bytes]:
    """Hand the handler each record's bytes untouched (FastStream would otherwise guess JSON)."""
    return [record.value or b"" for record in message.raw_message]


class RevenueProcessor:
    """One consumed batch: decode, dedupe, derive, publish every output, and only then remember
    what was processed. I/O is injected, so the guarantees are unit-tested without a broker."""

    def __init__(
        self, events_topic: str, raw_topic: str, publish: PublishKeyed, publish_letter: PublishLetter
    ) -> None:
        self._events_topic = events_topic
        self._raw_topic = raw_topic
        self._publish = publish
        self._publish_letter = publish_letter
        self.recent = RecentIds()
        self.revenue_counter = metrics.RevenueCounter()

    def _dead_letter(self, reason: str, payload: bytes) -> Awaitable[Any]:
        metrics.DEAD_LETTERED.labels(stage="processor").inc()
        letter = DeadLetter(
            reason=reason,
            topic=self._raw_topic,
            stage="processor",
            failed_at=datetime.now(UTC),
            payload=payload,
        )
        return self._publish_letter(letter.to_bytes())

    async def process(self, bodies: list[bytes]) -> None:
        """Raises (and remembers nothing) unless every output was acknowledged: the caller then
        NACKs and the batch is re-delivered and re-derived into the same records."""
        started = time.perf_counter()
        letters: list[Awaitable[Any]] = []
        messages: list[tuple[bytes, bytes]] = []
        derived_keys: list[str] = []
        in_batch: set[str] = set()
        outputs: list[DerivedEvent] = []
        states: Counter[EventState] = Counter()
        duplicates = 0
        seen = self.recent.seen
        for body in bodies:
            try:
                envelope = RawEnvelope.from_bytes(body)
            except ValidationError as exc:
                letters.append(
                    self._dead_letter(f"not a raw envelope: {exc.error_count()} validation errors", body)
                )
                continue
            dedupe_key = envelope.dedupe_key
            if dedupe_key in in_batch or seen(dedupe_key):
                duplicates += 1
                continue
            derived = derive(envelope)
            state = derived.event.state
            states[state] += 1
            if state is _FAILED:
                log.warning("could not derive %s: %s", dedupe_key, derived.event.error)
                letters.append(self._dead_letter(derived.event.error or "derivation failed", body))
            else:  # a replay after a fix must not be dropped
                derived_keys.append(dedupe_key)
            key = derived.revenue[0].payment_key if derived.revenue else envelope.provider_event_id
            messages.append((key.encode(), derived.to_bytes()))
            in_batch.add(dedupe_key)
            outputs.append(derived)
        for state, count in states.items():
            metrics.PROCESSED.labels(state=state.value).inc(count)
        if duplicates:
            metrics.DEDUPLICATED.inc(duplicates)
        try:
            await wait_all([self._publish(self._events_topic, messages), *letters])
        except Exception:
            metrics.PUBLISH_ERRORS.inc()
            raise  # NACK: the batch is re-delivered and re-derived into the same records
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        # Published and acknowledged: only now may the ids count as seen (never claim before success).
        for dedupe_key in derived_keys:
            self.recent.remember(dedupe_key)
        self.revenue_counter.observe_batch(outputs)


def register_revenue_processor(
    broker: KafkaBroker,
    topics: Topics,
    group_id: str,
    batch_size: int,
    flush_ms: int,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = 500,
) -> RevenueProcessor:
    """fetch_*: how long the broker may hold a fetch for more data (revstream.wiring)."""

    def publish(topic: str, messages: Iterable[tuple[bytes, bytes]]) -> Awaitable[None]:
        # Outputs go straight through the broker's aiokafka producer as one record batch per
        # partition (processors/kafka_batch.py): FastStream's per-message publish path cost a
        # third of the processor's CPU per event.
        return publish_keyed(broker_producer(broker), topic, messages)

    def publish_letter(payload: bytes) -> Awaitable[Any]:
        return broker.publish(payload, topic=topics.dlq)  # rare: FastStream's path is fine here

    processor = RevenueProcessor(topics.events, topics.raw, publish, publish_letter)

    @broker.subscriber(
        topics.raw,
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
    async def process_raw(bodies: list[bytes]) -> None:
        await processor.process(bodies)

    return processor
