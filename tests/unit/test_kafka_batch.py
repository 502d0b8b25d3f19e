"""The processor's batch publish path: the same partition per key as aiokafka's default
partitioner, every message in order in one record batch per partition, and no return before
every delivery was acknowledged."""

import asyncio
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from faststream.exceptions import IncorrectState
from faststream.kafka import KafkaBroker
from hypothesis import given
from hypothesis import strategies as st

from processors.kafka_batch import broker_producer, murmur2, partition_for, publish_keyed, wait_all


@given(st.binary(max_size=80))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@given(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_is_the_default_partitioners(key: bytes, count: int) -> None:
    partitions = set(range(count))  # what aiokafka's metadata holds for a topic
    expected = DefaultPartitioner()(key, list(partitions), list(partitions))
    assert partition_for(key, sorted(partitions)) == expected


KAFKA_VECTORS = {  # Apache Kafka's UtilsTest.testMurmur2 (Java ints): a key's partition never moves
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafkas_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected & 0xFFFFFFFF


def test_the_brokers_producer_is_reachable() -> None:
    """FastStream keeps the aiokafka producer in a private attribute: this fails if it moves."""
    broker = KafkaBroker("localhost:9092")
    with pytest.raises(IncorrectState):  # not connected yet: the path exists, the producer not
        broker_producer(broker)


class FakeProducer:
    """aiokafka's batch API with real record batches; deliveries resolve when told to."""

    def __init__(self, partitions: int = 4, batch_size: int = 512 * 1024, fail: bool = False) -> None:
        self.partitions = set(range(partitions))
        self.batch_size = batch_size
        self.fail = fail
        self.sent: list[tuple[str, int, BatchBuilder]] = []
        self.deliveries: list[asyncio.Future[Any]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return self.partitions

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert builder.closed()
        self.sent.append((topic, partition, builder))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery

    def acknowledge_all(self) -> None:
        for i, delivery in enumerate(self.deliveries):
            if self.fail and i == 0:
                delivery.set_exception(RuntimeError("NOT_ENOUGH_REPLICAS"))
            else:
                delivery.set_result(None)

    def records(self) -> list[tuple[int, bytes, bytes, list[Any]]]:
        found = []
        for _, partition, builder in self.sent:
            for record in DefaultRecordBatch(bytes(builder._build())):  # noqa: SLF001
                found.append((partition, record.key, record.value, list(record.headers)))
        return found


def _messages(count: int, keys: int) -> list[tuple[bytes, bytes]]:
    return [(f"pi_{i % keys}".encode(), f"value-{i}".encode()) for i in range(count)]


def test_every_message_lands_in_order_on_its_keys_partition() -> None:
    producer = FakeProducer()
    messages = _messages(200, keys=17)

    async def run() -> None:
        task = asyncio.create_task(publish_keyed(producer, "events", messages))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert not task.done(), "returned before the broker acknowledged"
        producer.acknowledge_all()
        await task

    asyncio.run(run())
    assert len(producer.sent) <= 4  # one record batch per partition
    records = producer.records()
    assert sorted(value for _, _, value, _ in records) == sorted(value for _, value in messages)
    for partition, key, _, headers in records:
        assert partition == partition_for(key, [0, 1, 2, 3])
        assert headers == []
    for key in {key for key, _ in messages}:  # one key's messages keep their order
        assert [v for _, k, v, _ in records if k == key] == [v for k, v in messages if k == key]


def test_a_full_batch_is_sent_and_the_partition_continues_in_a_new_one() -> None:
    producer = FakeProducer(partitions=1, batch_size=1000)
    messages = _messages(100, keys=3)

    async def run() -> None:
        task = asyncio.create_task(publish_keyed(producer, "events", messages))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        producer.acknowledge_all()
        await task

    asyncio.run(run())
    assert len(producer.sent) > 1
    assert [value for _, _, value, _ in producer.records()] == [value for _, value in messages]


def test_a_failed_delivery_raises_after_all_were_awaited() -> None:
    producer = FakeProducer(fail=True)

    async def run() -> None:
        task = asyncio.create_task(publish_keyed(producer, "events", _messages(50, keys=50)))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        producer.acknowledge_all()
        with pytest.raises(RuntimeError, match="NOT_ENOUGH_REPLICAS"):
            await task
        assert all(delivery.done() for delivery in producer.deliveries)

    asyncio.run(run())


def test_wait_all_waits_for_every_awaitable_before_raising() -> None:
    finished = []

    async def slow() -> None:
        await asyncio.sleep(0.02)
        finished.append("slow")

    async def failing() -> None:
        raise ValueError("nack")

    async def run() -> None:
        with pytest.raises(ValueError, match="nack"):
            await wait_all([failing(), slow()])
        assert finished == ["slow"]

    asyncio.run(run())
