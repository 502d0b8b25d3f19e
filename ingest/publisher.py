"""Publishing raw envelopes to Kafka with a bound on how long a webhook waits for the broker."""

import asyncio
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.envelope import RawEnvelope


class PublishUnavailable(Exception):
    """The broker did not acknowledge in time: answer 503 + Retry-After so the provider retries."""


class RawPublisher(Protocol):
    async def publish(self, envelope: RawEnvelope, key: bytes) -> None: ...


class KafkaRawPublisher:
    """Publishes to the raw topic and returns only after the broker acknowledged (acks=all).

    `make_producer` must return a producer with acks="all" and idempotence on
    (revstream.wiring.make_producer); it is called in `start`, on the running event loop, as
    aiokafka requires. The bound covers both waiting for room in the producer's buffer and the
    acknowledgement.
    """

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer], topic: str, timeout_s: float) -> None:
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None
        self._topic = topic
        self._timeout_s = timeout_s

    async def start(self) -> None:
        self._producer = self._make_producer()
        await self._producer.start()

    async def stop(self) -> None:
        """Sends what the producer still holds, then closes it."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, envelope: RawEnvelope, key: bytes) -> None:
        if self._producer is None:
            raise PublishUnavailable("publisher not started")
        try:
            async with asyncio.timeout(self._timeout_s):
                delivery = await self._producer.send(self._topic, envelope.to_bytes(), key=key)
                await delivery
        except (TimeoutError, KafkaError) as exc:
            # Nothing was acknowledged to the provider; a late broker write is a harmless duplicate.
            raise PublishUnavailable(type(exc).__name__) from None
