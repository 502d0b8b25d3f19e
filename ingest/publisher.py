"""Publishing raw envelopes to Kafka with a bound on how long a webhook waits for the broker."""

import asyncio
from typing import Protocol

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from schemas.envelope import RawEnvelope


class PublishUnavailable(Exception):
    """The broker did not acknowledge in time: answer 503 + Retry-After so the provider retries."""


class RawPublisher(Protocol):
    async def publish(self, envelope: RawEnvelope, key: bytes) -> None: ...


class KafkaRawPublisher:
    """Publishes to the raw topic and returns only after the broker acknowledged (acks=all).

    The broker must be created with acks="all" and idempotence on (see revstream.wiring).
    """

    def __init__(self, broker: KafkaBroker, topic: str, timeout_s: float) -> None:
        self._broker = broker
        self._topic = topic
        self._timeout_s = timeout_s

    async def publish(self, envelope: RawEnvelope, key: bytes) -> None:
        try:
            await asyncio.wait_for(
                self._broker.publish(envelope.to_bytes(), topic=self._topic, key=key),
                timeout=self._timeout_s,
            )
        except (TimeoutError, KafkaError) as exc:
            # Nothing was acknowledged to the provider; a late broker write is a harmless duplicate.
            raise PublishUnavailable(type(exc).__name__) from None
