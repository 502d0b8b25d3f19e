"""The PostgreSQL sink writes a batch as one INSERT ... SELECT FROM unnest(arrays) per table
(sinks/postgres/store.py, webhook_events.py): the arrays' types match the tables, a key repeated
inside one batch is written once (newest version), and the raw archive keeps its rules: the first
envelope of an event is kept, the processor's outcome is never overwritten, a replay is archived as
the original."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope, Source
from schemas.revenue import DerivedEvent
from sinks.postgres.migrations import apply_migrations
from sinks.postgres.store import EVENTS, LEDGER, ORDERS, PostgresStore
from sinks.postgres.webhook_events import RawArchive
from tests.conftest import create_database
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration]


@pytest.fixture
def db(services: ServiceEndpoints) -> Iterator[str]:
    url = create_database(services.postgres_url, f"revstream_batch_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def envelope(event_id: str, created: int, amount: int, replay: int = 0) -> RawEnvelope:
    charge = {"id": "ch_1", "object": "charge", "amount": amount, "currency": "eur", "status": "succeeded"}
    body = {
        "id": event_id,
        "object": "event",
        "type": "charge.succeeded",
        "created": created,
        "livemode": True,
        "data": {"object": dict(charge, payment_intent="pi_1")},
    }
    return RawEnvelope(
        source=Source.STRIPE,
        endpoint="default",
        entity="acme",
        provider_event_id=event_id,
        event_type="charge.succeeded",
        livemode=True,
        received_at=datetime(2025, 1, 1, tzinfo=UTC),
        content_type="application/json",
        body=json.dumps(body).encode(),
        replay=replay,
    )


async def flush(url: str, store_cls: type[PostgresStore] | type[RawArchive], items: list[object]) -> int:
    async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
        store = store_cls(pool)
        for item in items:
            store.add(item)  # type: ignore[arg-type]
        return await store.flush()


def test_the_arrays_have_the_tables_column_types(db: str) -> None:
    with psycopg.connect(db) as conn:
        for table, columns in (("webhook_events", EVENTS), ("revenue_ledger", LEDGER), ("orders", ORDERS)):
            stored = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
                    (table,),
                ).fetchall()
            )
            spelled = {"timestamp with time zone": "timestamptz"}
            expected = [spelled.get(stored[c], stored[c]) for c in columns.columns]
            assert columns.types == expected, table


def test_a_key_repeated_in_one_batch_is_written_once_newest_first(db: str) -> None:
    older = derive(envelope("evt_1", 1_700_000_000, 1000))
    newer = derive(envelope("evt_2", 1_700_000_100, 1200))  # the same charge, a later state
    batch: list[DerivedEvent] = [newer, older, older, newer, older]
    assert asyncio.run(flush(db, PostgresStore, list(batch))) == 5
    with psycopg.connect(db) as conn:
        ledger = conn.execute(
            "SELECT record_id, amount_minor, source_event_id FROM revenue_ledger"
        ).fetchall()
        events = conn.execute("SELECT provider_event_id, state FROM webhook_events ORDER BY 1").fetchall()
        receipts = conn.execute("SELECT record_id, amount_minor FROM audit_receipts").fetchall()
    assert ledger == [("stripe:payment:pi_1", 1200, "evt_2")]
    assert events == [("evt_1", "processed"), ("evt_2", "processed")]
    assert receipts == [("stripe:payment:pi_1", 1200)]


def test_the_archive_keeps_the_first_envelope_and_never_the_outcome(db: str) -> None:
    first = envelope("evt_1", 1_700_000_000, 1000)
    replayed = envelope("evt_2", 1_700_000_100, 1200, replay=2)
    asyncio.run(flush(db, PostgresStore, [derive(first)]))  # the processor's outcome came first
    decoded = [RawArchive.decode(first.to_bytes()), RawArchive.decode(replayed.to_bytes())]
    decoded += [RawArchive.decode(b"not an envelope"), RawArchive.decode(first.to_bytes())]
    assert asyncio.run(flush(db, RawArchive, decoded)) == 2
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT provider_event_id, state, raw_envelope FROM webhook_events ORDER BY 1"
        ).fetchall()
    (id_1, state_1, raw_1), (id_2, state_2, raw_2) = rows
    assert (id_1, state_1, bytes(raw_1)) == ("evt_1", "processed", first.to_bytes())
    assert (id_2, state_2) == ("evt_2", "received")
    assert RawEnvelope.from_bytes(bytes(raw_2)) == replayed.model_copy(update={"replay": 0})
    # An envelope already archived is not replaced by a later delivery.
    again = envelope("evt_1", 1_700_000_000, 999)
    asyncio.run(flush(db, RawArchive, [RawArchive.decode(again.to_bytes())]))
    with psycopg.connect(db) as conn:
        (raw,) = conn.execute(
            "SELECT raw_envelope FROM webhook_events WHERE provider_event_id = 'evt_1'"
        ).fetchone() or (None,)
    assert raw is not None and bytes(raw) == first.to_bytes()
