"""`revstream dlq list` and `revstream dlq replay`: inspect dead letters, and after a fix put them
back onto the raw topic so the pipeline derives them again.

A dead letter is named by where it sits in the dead-letter topic, `<partition>:<offset>`, which
never changes. Replaying is safe to repeat: a replayed envelope keeps its provider event id, so
the stores' idempotent upserts absorb a second replay (or an event that was meanwhile re-sent).
"""

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from revstream.settings import Settings, SettingsError
from revstream.wiring import topics_for
from schemas.dead_letter import DeadLetter
from schemas.envelope import RawEnvelope


@dataclass(frozen=True)
class StoredLetter:
    letter_id: str  # <partition>:<offset> in the dead-letter topic
    letter: DeadLetter | None  # None: the message on the DLQ is itself unreadable
    raw: bytes

    @property
    def envelope(self) -> RawEnvelope | None:
        if self.letter is None:
            return None
        try:
            return RawEnvelope.from_bytes(self.letter.payload)
        except ValidationError:
            return None

    @property
    def key(self) -> bytes | None:
        """The raw topic's key, as ingest chose it: the provider object id, else the event id."""
        envelope = self.envelope
        if envelope is None:
            return None
        try:
            obj = json.loads(envelope.body)["data"]["object"]
            if isinstance(obj.get("id"), str):
                return str(obj["id"]).encode()
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        return envelope.provider_event_id.encode()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[str, bytes]]:
    """Every message on `topic` up to its current end as (`<partition>:<offset>`, value), in
    partition and offset order. Reads without a consumer group: it never moves anyone's offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        # topics() fetches metadata without keeping it; the client's own update is what
        # partitions_for_topic reads (the same call tests/conftest.py uses).
        await consumer._client.force_metadata_update()  # noqa: SLF001
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[tuple[int, int, bytes]] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(*partitions, timeout_ms=1000)
            for tp, messages in batch.items():
                found += [(tp.partition, m.offset, m.value or b"") for m in messages if m.offset < ends[tp]]
        return [(f"{partition}:{offset}", value) for partition, offset, value in sorted(found)]
    finally:
        await consumer.stop()


async def read_letters(bootstrap: str, topic: str) -> list[StoredLetter]:
    """Every dead letter on `topic`, readable or not."""
    letters = []
    for letter_id, raw in await read_topic(bootstrap, topic):
        try:
            letter: DeadLetter | None = DeadLetter.model_validate_json(raw)
        except ValidationError:
            letter = None
        letters.append(StoredLetter(letter_id, letter, raw))
    return letters


def describe(stored: StoredLetter) -> str:
    if stored.letter is None:
        return f"{stored.letter_id}\t-\t-\t-\tunreadable dead letter ({len(stored.raw)} bytes)"
    envelope = stored.envelope
    event = f"{envelope.source.value}:{envelope.provider_event_id} {envelope.event_type}" if envelope else "-"
    letter = stored.letter
    return f"{stored.letter_id}\t{letter.failed_at.isoformat()}\t{letter.stage}\t{event}\t{letter.reason}"


async def replay(bootstrap: str, raw_topic: str, letters: list[StoredLetter]) -> int:
    """Publish each letter's payload to the raw topic (acks=all, idempotent producer)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for stored in letters:
            assert stored.letter is not None
            await producer.send_and_wait(raw_topic, stored.letter.payload, key=stored.key)
    finally:
        await producer.stop()
    return len(letters)


def run_dlq(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of `revstream dlq list|replay`; returns the exit status."""
    settings.require("KAFKA_BOOTSTRAP_SERVERS")
    assert settings.kafka_bootstrap_servers is not None
    bootstrap = settings.kafka_bootstrap_servers
    topics = topics_for(settings)
    letters = asyncio.run(read_letters(bootstrap, topics.dlq))
    if args.dlq_command == "list":
        print("id\tfailed_at\tstage\tevent\treason")
        for stored in letters:
            print(describe(stored))
        print(f"{len(letters)} dead letter(s) on {topics.dlq}", file=sys.stderr)
        return 0
    by_id = {s.letter_id: s for s in letters}
    if args.all:
        chosen = [s for s in letters if s.letter is not None]
    else:
        unknown = [i for i in args.ids if i not in by_id]
        if unknown:
            raise SettingsError(
                f"no dead letter {', '.join(unknown)} on {topics.dlq}: see `revstream dlq list`"
            )
        chosen = [by_id[i] for i in dict.fromkeys(args.ids)]
        unreadable = [s.letter_id for s in chosen if s.letter is None]
        if unreadable:
            raise SettingsError(f"dead letter {', '.join(unreadable)} is unreadable: nothing to replay")
    count = asyncio.run(replay(bootstrap, topics.raw, chosen))
    print(f"replayed {count} dead letter(s) onto {topics.raw}")
    return 0
