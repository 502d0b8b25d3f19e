"""Refunds never exceed their charge: a PostgreSQL trigger refuses it whatever writes the ledger, and
the sink turns a refusal into a failed event with the reason instead of a batch that never commits."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.errors import CheckViolation
from psycopg_pool import AsyncConnectionPool

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope, Source
from schemas.revenue import DerivedEvent
from sinks.postgres.migrations import apply_migrations
from sinks.postgres.store import PostgresStore
from tests.conftest import create_database
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration]


@pytest.fixture
def db(services: ServiceEndpoints) -> Iterator[str]:
    url = create_database(services.postgres_url, f"revstream_refunds_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def event(event_id: str, event_type: str, created: int, obj: dict[str, Any]) -> DerivedEvent:
    body = {"id": event_id, "object": "event", "type": event_type, "created": created, "livemode": True}
    body["data"] = {"object": obj}
    return derive(
        RawEnvelope(
            source=Source.STRIPE,
            endpoint="default",
            entity="acme",
            provider_event_id=event_id,
            event_type=event_type,
            livemode=True,
            received_at=datetime.now(UTC),
            content_type="application/json",
            body=json.dumps(body).encode(),
        )
    )


def charge(amount: int) -> DerivedEvent:
    obj = {"id": "ch_1", "object": "charge", "amount": amount, "currency": "jpy", "status": "succeeded"}
    return event("evt_charge", "charge.succeeded", 1_700_000_000, dict(obj, payment_intent="pi_1"))


def refund(n: int, amount: int) -> DerivedEvent:
    obj = {"id": f"re_{n}", "object": "refund", "amount": amount, "currency": "jpy", "status": "succeeded"}
    return event(f"evt_refund_{n}", "refund.created", 1_700_000_100 + n, dict(obj, payment_intent="pi_1"))


def write(url: str, *batches: list[DerivedEvent]) -> None:
    async def run() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            store = PostgresStore(pool)
            for batch in batches:
                for derived in batch:
                    store.add(derived)
                await store.flush()

    asyncio.run(run())


def state(url: str) -> tuple[dict[str, tuple[str, str | None]], dict[str, int]]:
    with psycopg.connect(url) as conn:
        events = {
            e: (s, err)
            for e, s, err in conn.execute("SELECT provider_event_id, state, error FROM webhook_events")
        }
        ledger = dict(
            conn.execute("SELECT record_id, amount_minor FROM revenue_ledger WHERE counted").fetchall()
        )
    return events, ledger


def test_the_refund_that_would_exceed_the_charge_is_refused_and_recorded(db: str) -> None:
    # One batch: the charge (¥1000), a refund of ¥600 (fits) and one of ¥500 (would make ¥1100).
    write(db, [charge(1000), refund(1, 600), refund(2, 500)])
    events, ledger = state(db)
    assert ledger == {"stripe:payment:pi_1": 1000, "stripe:refund:re_1": 600}
    assert events["evt_charge"] == ("processed", None) and events["evt_refund_1"] == ("processed", None)
    status, error = events["evt_refund_2"]
    assert status == "failed" and error is not None and "exceed the charge" in error

    # A re-delivery changes nothing, and the pipeline goes on: a refund that fits still lands.
    write(db, [refund(2, 500)], [refund(3, 400)])
    events, ledger = state(db)
    assert events["evt_refund_2"][0] == "failed" and events["evt_refund_3"] == ("processed", None)
    assert sum(v for k, v in ledger.items() if k.startswith("stripe:refund:")) == 1000


def test_a_payment_smaller_than_its_earlier_refunds_is_refused(db: str) -> None:
    """Refunds may arrive before their charge; the rule is checked when the charge arrives."""
    write(db, [refund(1, 700)], [charge(500)])
    events, ledger = state(db)
    assert ledger == {"stripe:refund:re_1": 700}
    assert events["evt_charge"][0] == "failed"


def test_the_rule_lives_in_the_database_not_only_in_code(db: str) -> None:
    write(db, [charge(1000)])
    with psycopg.connect(db) as conn, pytest.raises(CheckViolation) as refused:
        conn.execute(
            "INSERT INTO revenue_ledger (record_id, kind, source, entity, payment_key, amount_minor, currency,"
            " livemode, counted, status, occurred_at, version, source_event_id, source_event_type)"
            " VALUES ('manual', 'refunded_total', 'stripe', 'acme', 'pi_1', 1001, 'jpy', true, true,"
            " 'succeeded', now(), 1, 'by hand', 'psql')"
        )
    assert refused.value.diag.constraint_name == "refunds_within_charge"
