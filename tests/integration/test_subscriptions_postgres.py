"""The PostgreSQL sink on real PostgreSQL: generated subscription histories, delivered in any order
with duplicates, in random batches, by two writers at once, end in the same `subscriptions`,
`mrr_movements` and `mrr_totals` rows, equal to the independent expectation."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from processors.revenue.derive import derive
from schemas.revenue import DerivedEvent
from sinks.postgres.migrations import apply_migrations
from sinks.postgres.store import PostgresStore
from sinks.postgres.subscriptions import mrr_totals
from tests.conftest import create_database
from tests.services import ServiceEndpoints
from tests.subscription_histories import deliveries, event_body, expected_history, expected_mrr, portfolios
from tests.unit.test_stripe_derive import envelope_for

pytestmark = [pytest.mark.integration]

TABLES = "webhook_events, subscription_snapshots, subscriptions, mrr_movements, subscription_invoices, invoice_payments"


@pytest.fixture(scope="module")
def database(services: ServiceEndpoints) -> Iterator[str]:
    url = create_database(services.postgres_url, f"revstream_subs_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "subscriptions": conn.execute(
                "SELECT subscription_key, status, currency, mrr_minor, arr_minor, entity, livemode, customer_id, "
                "snapshot_count FROM subscriptions ORDER BY 1"
            ).fetchall(),
            "movements": conn.execute(
                "SELECT subscription_key, kind, currency, amount_minor, mrr_before, mrr_after, "
                "extract(epoch FROM occurred_at)::bigint, source_event_id FROM mrr_movements ORDER BY movement_id"
            ).fetchall(),
            "totals": conn.execute(
                "SELECT entity, livemode, currency, mrr_minor, arr_minor, active_customers FROM mrr_totals ORDER BY 1, 2, 3"
            ).fetchall(),
        }


async def write(url: str, batches: list[list[DerivedEvent]], writers: int) -> None:
    """Flush the batches with `writers` stores at once (each its own connection and transaction)."""
    async with AsyncConnectionPool(url, min_size=writers, max_size=writers, open=False) as pool:
        stores = [PostgresStore(pool) for _ in range(writers)]

        async def run(store: PostgresStore, mine: list[list[DerivedEvent]]) -> None:
            for batch in mine:
                for derived in batch:
                    store.add(derived)
                await store.flush()

        await asyncio.gather(*(run(store, batches[i::writers]) for i, store in enumerate(stores)))


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_delivery_order_batching_and_concurrency_gives_the_same_rows(
    database: str, data: st.DataObject
) -> None:
    subs = data.draw(portfolios())
    entity_of = {state.event_id: sub.entity for sub in subs for state in sub.states}
    bodies = [event_body(sub, state) for sub in subs for state in sub.states]
    seen = []
    for attempt in range(2):
        shuffled = deliveries(data.draw, bodies)
        derived = [derive(envelope_for(b, entity=entity_of[json.loads(b)["id"]])) for b in shuffled]
        cuts = sorted(data.draw(st.lists(st.integers(0, len(derived)), max_size=4)))
        batches = [
            derived[a:b] for a, b in zip([0, *cuts], [*cuts, len(derived)], strict=True) if derived[a:b]
        ]
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {TABLES}")
        asyncio.run(write(database, batches, writers=1 + attempt))
        seen.append(rows(database))
    assert seen[0] == seen[1]

    expected_subs, expected_moves, expected_totals = [], [], {}
    customers: dict[tuple[str, bool, str], set[str]] = {}
    for sub in subs:
        key = f"stripe:subscription:{sub.subscription_id}"
        final, moves = expected_history(sub)
        expected_subs.append((key, *final))
        expected_moves += [(key, *m) for m in moves]
        status, currency, mrr, arr, entity, livemode, customer, _ = final
        if mrr > 0:
            group = (entity, livemode, currency)
            total = expected_totals.setdefault(group, [0, 0])
            total[0] += mrr
            customers.setdefault(group, set()).add(customer)
    got = seen[0]
    assert sorted(got["subscriptions"]) == sorted(expected_subs)
    assert sorted(got["movements"]) == sorted(expected_moves)
    assert sorted(got["totals"]) == [
        (*group, mrr, 12 * mrr, len(customers[group])) for group, (mrr, _) in sorted(expected_totals.items())
    ]
    assert all(expected_mrr(s) >= 0 for sub in subs for s in sub.states)


def test_read_function_and_invoice_link(database: str) -> None:
    """mrr_totals() filters by livemode; an invoice for a subscription sets its latest invoice."""
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES}")
    created = {
        "id": "evt_r1",
        "type": "customer.subscription.created",
        "created": 1700000000,
        "livemode": True,
        "data": {
            "object": {
                "id": "sub_r",
                "object": "subscription",
                "customer": "cus_r",
                "status": "active",
                "items": {
                    "data": [
                        {
                            "id": "si_r",
                            "quantity": 2,
                            "price": {
                                "id": "p",
                                "currency": "jpy",
                                "unit_amount": 1500,
                                "recurring": {"interval": "month"},
                            },
                        }
                    ]
                },
            }
        },
    }
    invoice = {
        "id": "evt_r2",
        "type": "invoice.payment_failed",
        "created": 1700000100,
        "livemode": True,
        "data": {
            "object": {
                "id": "in_r",
                "object": "invoice",
                "status": "open",
                "customer": "cus_r",
                "currency": "jpy",
                "amount_due": 3000,
                "amount_paid": 0,
                "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_r"}},
            }
        },
    }
    batch = [derive(envelope_for(json.dumps(e).encode())) for e in (invoice, created)]
    asyncio.run(write(database, [batch[:1], batch[1:]], writers=1))

    async def read(livemode: bool | None) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(database) as conn, conn.cursor() as cur:
            return await mrr_totals(cur, livemode)

    live = [
        {
            "entity": "acme",
            "livemode": True,
            "currency": "jpy",
            "mrr": 3000,
            "arr": 36000,
            "active_customers": 1,
            "active_subscriptions": 1,
        }
    ]
    assert asyncio.run(read(True)) == live
    assert asyncio.run(read(None)) == live
    assert asyncio.run(read(False)) == []
    with psycopg.connect(database) as conn:
        assert conn.execute(
            "SELECT latest_invoice_id, latest_invoice_status FROM subscriptions"
        ).fetchall() == [("in_r", "open")]
