"""Publishing a batch of keyed messages through aiokafka's batch API.

A processor publishes hundreds of outputs per consumed batch. FastStream's `broker.publish`
costs a publish command, middlewares, two headers (one a fresh UUID) and a delivery future per
message, and aiokafka's `send` hashes each key in pure Python: together a third of the
processor's CPU per event. Here a batch's messages go into one record batch per partition
(aiokafka's `create_batch` / `send_batch`), one delivery future per partition, on the broker's
own producer, so its settings stay those of `make_broker` (acks=all, idempotent, 512 KiB
batches).

Partitioning is the one aiokafka's DefaultPartitioner (and Kafka's Java client) applies to a
keyed message: murmur2(key) & 0x7fffffff modulo the partition count, so a key lands on the same
partition as before and as every other producer of the topic.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from faststream.kafka import KafkaBroker

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_WORDS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), equal to aiokafka's
    `partitioner.murmur2` for every input, about twice as fast: whole little-endian words are
    unpacked at once and the 32-bit masks are applied once per step."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    unpack = _WORDS.get(words)
    if unpack is None:
        unpack = _WORDS[words] = struct.Struct(f"<{words}I").unpack_from
    for k in unpack(data):
        k = (k * _M) & _MASK
        h = ((h * _M) ^ ((k ^ (k >> 24)) * _M)) & _MASK
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition aiokafka's DefaultPartitioner picks for a keyed message (`partitions` sorted)."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


def broker_producer(broker: KafkaBroker) -> AIOKafkaProducer:
    """The started aiokafka producer inside a FastStream KafkaBroker (FastStream 0.7 keeps it at
    `config.producer._producer.producer`; pinned in pyproject, checked by a unit test)."""
    try:
        return broker.config.producer._producer.producer  # type: ignore[attr-defined,no-any-return]  # noqa: SLF001
    except AttributeError as exc:  # pragma: no cover - only if FastStream's internals move
        raise RuntimeError(
            "cannot reach the aiokafka producer inside the FastStream broker: "
            "FastStream's internals changed, update processors/kafka_batch.broker_producer"
        ) from exc


async def publish_keyed(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[tuple[bytes, bytes]]
) -> None:
    """Publish (key, value) messages to `topic` and return once the broker acknowledged every one
    of them (as the producer's acks setting says); raise the first delivery error otherwise.

    Messages of one key keep their order (one partition, appended in order). Messages carry no
    headers and the producer's current time as their timestamp."""
    partitions = sorted(await producer.partitions_for(topic))
    builders: dict[int, Any] = {}
    deliveries: list[asyncio.Future[Any]] = []
    for key, value in messages:
        partition = partition_for(key, partitions)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:
            # Full (max_batch_size): hand it over and start the partition's next one. aiokafka
            # accepts the first message of an empty batch whatever its size.
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(timestamp=None, key=key, value=value)
    for partition, builder in builders.items():
        builder.close()  # no producer.send() may add a message whose future nobody awaits
        deliveries.append(await producer.send_batch(builder, topic, partition=partition))
    await wait_all(deliveries)


async def wait_all(awaitables: Iterable[Any]) -> None:
    """Await every one (none is left running or with an unread error), then raise the first error."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
