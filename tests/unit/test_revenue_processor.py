"""The processor's batch handler without a broker: outputs and dead letters are all acknowledged
before the batch counts as processed; a failed publish raises (NACK) and forgets nothing."""

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from processors.revenue.consumer import RevenueProcessor
from processors.revenue.derive import derive
from schemas.dead_letter import DeadLetter
from schemas.envelope import RawEnvelope
from schemas.revenue import DerivedEvent
from tests.stripe_fixtures import fixture_bytes
from tests.unit.test_stripe_derive import envelope_for

CHARGE = "stripe-sync-engine/charge.succeeded__1.json"
CHECKOUT = "stripe-sync-engine/checkout.session.completed__1.json"


class FakeOutputs:
    """Records what was published; deliveries complete only when `release` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.release = asyncio.Event()
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.letters: list[bytes] = []

    async def publish(self, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
        batch = [(topic, key, value) for key, value in messages]
        await self.release.wait()
        if self.fail:
            raise RuntimeError("broker did not acknowledge")
        self.messages += batch

    async def publish_letter(self, payload: bytes) -> Any:
        await self.release.wait()
        self.letters.append(payload)


def processor_for(outputs: FakeOutputs) -> RevenueProcessor:
    return RevenueProcessor("revenue.events.v1", "revenue.raw.v1", outputs.publish, outputs.publish_letter)


def raw(relative: str) -> bytes:
    return envelope_for(fixture_bytes(relative)).to_bytes()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _process(processor: RevenueProcessor, outputs: FakeOutputs, bodies: list[bytes]) -> None:
    task = asyncio.create_task(processor.process(bodies))
    await asyncio.sleep(0.01)
    assert not task.done(), "the batch finished before its outputs were acknowledged"
    outputs.release.set()
    await task


def test_outputs_keyed_by_payment_and_dead_letters_acknowledged_before_the_batch_is_done() -> None:
    outputs = FakeOutputs()
    processor = processor_for(outputs)
    processed = sample("revstream_processed_events_total", state="processed")
    duplicates = sample("revstream_deduplicated_events_total")
    bodies = [raw(CHARGE), raw(CHECKOUT), raw(CHARGE), b"not an envelope"]
    asyncio.run(_process(processor, outputs, bodies))

    expected = [derive(RawEnvelope.from_bytes(body)) for body in bodies[:2]]
    assert outputs.messages == [
        ("revenue.events.v1", d.revenue[0].payment_key.encode(), d.to_bytes()) for d in expected
    ]
    assert [DeadLetter.model_validate_json(letter).payload for letter in outputs.letters] == [
        b"not an envelope"
    ]
    assert sample("revstream_processed_events_total", state="processed") == processed + 2
    assert sample("revstream_deduplicated_events_total") == duplicates + 1
    assert all(processor.recent.seen(RawEnvelope.from_bytes(body).dedupe_key) for body in bodies[:2])


def test_a_failed_publish_raises_and_remembers_nothing() -> None:
    outputs = FakeOutputs(fail=True)
    processor = processor_for(outputs)
    errors = sample("revstream_processor_publish_errors_total")
    with pytest.raises(RuntimeError, match="acknowledge"):
        asyncio.run(_process(processor, outputs, [raw(CHARGE)]))
    assert sample("revstream_processor_publish_errors_total") == errors + 1
    assert not processor.recent.seen(RawEnvelope.from_bytes(raw(CHARGE)).dedupe_key)

    # The re-delivered batch is derived and published again, not skipped as a duplicate.
    outputs.fail = False
    outputs.release = asyncio.Event()
    asyncio.run(_process(processor, outputs, [raw(CHARGE)]))
    assert [DerivedEvent.from_bytes(value).event.provider_event_id for _, _, value in outputs.messages] == [
        RawEnvelope.from_bytes(raw(CHARGE)).provider_event_id
    ]


def test_revenue_is_counted_once_per_record_per_batch() -> None:
    labels = {"kind": "payment", "currency": "usd", "livemode": "false"}
    before = sample("revstream_revenue_amount_minor_total", **labels)
    records_before = sample("revstream_revenue_records_total", **labels)
    outputs = FakeOutputs()
    processor = processor_for(outputs)
    asyncio.run(_process(processor, outputs, [raw(CHARGE)]))
    payment = derive(RawEnvelope.from_bytes(raw(CHARGE))).revenue[0]
    assert sample("revstream_revenue_amount_minor_total", **labels) == before + payment.amount_minor
    assert sample("revstream_revenue_records_total", **labels) == records_before + 1
