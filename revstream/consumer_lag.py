"""Consumer lag per group and partition, sampled in the background by each consumer service.

Lag = the partition's end offset minus the group's committed offset (minus the beginning
offset when the group never committed there, since every group reads from the earliest
message). Offsets are committed only after a batch is durable, so lag counts messages not yet
safely processed. Every replica of a group exports the same numbers: aggregate with max().

The processor also exports how many messages the dead-letter topic holds, for the "DLQ not
empty" alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import Counter, Gauge

log = logging.getLogger("revstream.lag")

DEFAULT_INTERVAL_S = 10.0

CONSUMER_LAG = Gauge(
    "revstream_consumer_lag_messages",
    "Messages in a partition not yet committed by a consumer group (end offset - committed offset).",
    ["group", "topic", "partition"],
)
COMMITTED = Gauge(
    "revstream_consumer_committed_offset",
    "The consumer group's committed offset per partition (its rate is the group's throughput).",
    ["group", "topic", "partition"],
)
TOPIC_MESSAGES = Gauge(
    "revstream_kafka_topic_messages",
    "Messages retained in a watched topic (end - beginning offsets over its partitions), e.g. the DLQ.",
    ["topic"],
)
SAMPLE_ERRORS = Counter(
    "revstream_consumer_lag_errors_total",
    "Lag samples that failed because the broker did not answer (Kafka errors, timeouts).",
)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int  # -1 when the group has not committed on this partition yet
    beginning: int
    end: int

    @property
    def lag(self) -> int:
        start = self.committed if self.committed >= 0 else self.beginning
        return max(0, self.end - start)

    @property
    def consumed(self) -> int:
        """Messages the group has committed past on this partition (since the beginning offset)."""
        return max(0, self.committed - self.beginning) if self.committed >= 0 else 0


class OffsetReader:
    """Reads committed, beginning and end offsets with one admin client and one group-less consumer."""

    def __init__(self, bootstrap_servers: str) -> None:
        servers = bootstrap_servers.split(",")
        self._admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="revstream-lag")
        self._consumer = AIOKafkaConsumer(bootstrap_servers=servers, client_id="revstream-lag")
        self._partitions: dict[str, list[TopicPartition]] = {}  # a topic's partition count never shrinks

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            (described,) = await self._admin.describe_topics([topic])
            found = sorted(p["partition"] for p in described.get("partitions", []))
            if not found:
                return []  # not created yet: ask again next time
            self._partitions[topic] = [TopicPartition(topic, p) for p in found]
        return self._partitions[topic]

    async def bounds(self, partitions: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        if not partitions:
            return {}
        beginning = await self._consumer.beginning_offsets(partitions)
        end = await self._consumer.end_offsets(partitions)
        return {tp: (beginning[tp], end[tp]) for tp in partitions}

    async def group_lag(self, group: str, topics: Iterable[str]) -> list[PartitionLag]:
        partitions = [tp for topic in topics for tp in await self.partitions(topic)]
        bounds = await self.bounds(partitions)
        committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
        result = []
        for tp in partitions:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None else -1
            beginning, end = bounds[tp]
            result.append(PartitionLag(group, tp.topic, tp.partition, offset, beginning, end))
        return result

    async def topic_messages(self, topic: str) -> int:
        bounds = await self.bounds(await self.partitions(topic))
        return sum(end - beginning for beginning, end in bounds.values())


@dataclass(frozen=True)
class LagWatch:
    """What one service watches: its consumer groups and their topics, plus topics to size."""

    groups: dict[str, tuple[str, ...]]
    sized_topics: tuple[str, ...] = ()


async def sample_once(reader: OffsetReader, watch: LagWatch) -> list[PartitionLag]:
    """Take one sample and publish it on the gauges; return the per-partition numbers."""
    lags: list[PartitionLag] = []
    for group, topics in watch.groups.items():
        for item in await reader.group_lag(group, topics):
            labels = (item.group, item.topic, str(item.partition))
            CONSUMER_LAG.labels(*labels).set(item.lag)
            if item.committed >= 0:
                COMMITTED.labels(*labels).set(item.committed)
            lags.append(item)
    for topic in watch.sized_topics:
        TOPIC_MESSAGES.labels(topic).set(await reader.topic_messages(topic))
    return lags


async def run_lag_monitor(
    bootstrap_servers: str, watch: LagWatch, interval_s: float = DEFAULT_INTERVAL_S
) -> None:
    """Sample forever (until cancelled). A broker outage is counted and logged, never fatal:
    the consumer itself is what must keep running."""
    reader: OffsetReader | None = None
    try:
        while True:
            try:
                if reader is None:
                    reader = OffsetReader(bootstrap_servers)
                    await reader.start()
                await asyncio.wait_for(sample_once(reader, watch), timeout=max(interval_s, 5.0))
            except (KafkaError, TimeoutError, OSError) as exc:
                SAMPLE_ERRORS.inc()
                log.warning(
                    "consumer lag sample failed (%s); retrying in %.0f s", type(exc).__name__, interval_s
                )
                if reader is not None:
                    await reader.stop()  # reconnect from scratch next time
                    reader = None
            await asyncio.sleep(interval_s)
    finally:
        if reader is not None:
            await reader.stop()


def start_lag_monitor(
    bootstrap_servers: str, watch: LagWatch, interval_s: float = DEFAULT_INTERVAL_S
) -> asyncio.Task[None]:
    """Run the monitor as a background task of the running loop; cancel it to stop."""
    return asyncio.create_task(run_lag_monitor(bootstrap_servers, watch, interval_s), name="lag-monitor")


async def stop_lag_monitor(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def lag_watch_for(topic_prefix: str, service: str) -> LagWatch | None:
    """What `revstream run <service>` watches: the groups it consumes with (and the DLQ's size for
    the processor). None for services without a consumer (ingest, api)."""
    from revstream.wiring import GROUP_PROCESSOR, GROUP_SINK_CLICKHOUSE, GROUP_SINK_POSTGRES
    from schemas.topics import Topics

    topics = Topics(prefix=topic_prefix)
    if service == "processor":
        return LagWatch({topic_prefix + GROUP_PROCESSOR: (topics.raw,)}, sized_topics=(topics.dlq,))
    if service == "sink-postgres":
        return LagWatch({topic_prefix + GROUP_SINK_POSTGRES: (topics.events,)})
    if service in ("sink-clickhouse", "web", "analytics"):
        return LagWatch({topic_prefix + GROUP_SINK_CLICKHOUSE: (topics.events,)})
    return None
