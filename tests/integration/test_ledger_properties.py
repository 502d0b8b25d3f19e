"""Property: any permutation of a revenue history, with random duplicates and random batch cuts,
written through the real PostgresStore into the session's PostgreSQL, ends in the same ledger,
order and order-event state, and that state equals an independent computation from the history.

Histories mix payments (some through checkout with a buyer, some anonymous), fees, failed attempts,
several partial refunds per charge reported both as refund.created and as charge.refunded (with
the refund list, or without it as API versions since 2022-11-15 send it), disputes through their
lifecycle (inquiry, won, lost, still open), currencies including zero-decimal JPY, two business
entities, and test and live mode."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope, Source
from schemas.revenue import DerivedEvent
from sinks.postgres.migrations import apply_migrations
from sinks.postgres.store import PostgresStore
from tests.conftest import create_database
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration]

RECEIVED = datetime(2025, 1, 1, tzinfo=UTC)
DISPUTE_OUTCOMES = ("none", "inquiry_closed", "won", "lost", "open")


@dataclass
class Payment:
    n: int
    entity: str
    livemode: bool
    currency: str
    amount: int
    order: str  # "none" | "buyer" | "anonymous"
    fee: int
    failed_first: bool
    refunds: list[int]
    listed: bool  # charge.refunded lists its refunds (older APIs) or omits them (2022-11-15+)
    dispute: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pi(self) -> str:
        return f"pi_{self.n}"

    @property
    def refunded(self) -> int:
        return sum(self.refunds)

    @property
    def dispute_amount(self) -> int:
        return self.amount - self.refunded

    @property
    def disputed(self) -> str:
        return self.dispute if self.dispute_amount > 0 else "none"


@st.composite
def payments(draw: st.DrawFn, n: int) -> Payment:
    currency = draw(st.sampled_from(["usd", "eur", "jpy"]))
    amount = draw(st.integers(min_value=1, max_value=10**7))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=amount), max_size=3)))
    refunds = [b - a for a, b in zip([0, *cuts], cuts, strict=False) if b > a]
    return Payment(
        n=n,
        entity=draw(st.sampled_from(["acme", "acme-gmbh"])),
        livemode=draw(st.booleans()),
        currency=currency,
        amount=amount,
        order=draw(st.sampled_from(["none", "buyer", "anonymous"])),
        fee=draw(st.sampled_from([0, amount // 30])),
        failed_first=draw(st.booleans()),
        refunds=refunds,
        listed=draw(st.booleans()),
        dispute=draw(st.sampled_from(DISPUTE_OUTCOMES)),
    )


def stripe_event(p: Payment, name: str, event_type: str, created: int, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{p.n}_{name}",
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": p.livemode,
        "data": {"object": obj},
    }


def build_events(p: Payment, t0: int) -> list[dict[str, Any]]:
    charge = {
        "id": f"ch_{p.n}",
        "object": "charge",
        "amount": p.amount,
        "amount_captured": p.amount,
        "amount_refunded": 0,
        "currency": p.currency,
        "status": "succeeded",
        "paid": True,
        "captured": True,
        "payment_intent": p.pi,
        "customer": None,
    }
    events = []
    if p.failed_first:
        failed = dict(charge, id=f"ch_{p.n}_declined", status="failed", paid=False, captured=False)
        events.append(stripe_event(p, "declined", "charge.failed", t0 - 60, failed))
    succeeded = dict(charge)
    if p.fee:
        succeeded["balance_transaction"] = {"id": f"txn_{p.n}", "fee": p.fee, "currency": p.currency}
    events.append(stripe_event(p, "charge", "charge.succeeded", t0, succeeded))
    if p.order != "none":
        session = {
            "id": f"cs_{p.n}",
            "object": "checkout.session",
            "mode": "payment",
            "payment_status": "paid",
            "amount_total": p.amount,
            "currency": p.currency,
            "payment_intent": p.pi,
            "customer": None,
            "customer_details": {"email": f"buyer{p.n}@example.com"} if p.order == "buyer" else None,
        }
        events.append(stripe_event(p, "checkout", "checkout.session.completed", t0, session))
    listed: list[dict[str, Any]] = []
    for i, amount in enumerate(p.refunds):
        refund = {
            "id": f"re_{p.n}_{i}",
            "object": "refund",
            "amount": amount,
            "currency": p.currency,
            "status": "succeeded",
            "payment_intent": p.pi,
            "charge": charge["id"],
        }
        listed.append(refund)
        created = t0 + 10 * (i + 1)
        events.append(stripe_event(p, f"refund{i}", "refund.created", created, refund))
        snapshot = dict(charge, amount_refunded=sum(p.refunds[: i + 1]), refunded=i == len(p.refunds) - 1)
        if p.listed:
            snapshot["refunds"] = {"object": "list", "data": list(listed), "has_more": False}
        events.append(stripe_event(p, f"refunded{i}", "charge.refunded", created, snapshot))
    if p.disputed != "none":
        t = t0 + 1000
        dispute = {
            "id": f"dp_{p.n}",
            "object": "dispute",
            "amount": p.dispute_amount,
            "currency": p.currency,
            "charge": charge["id"],
            "payment_intent": p.pi,
            "balance_transactions": [],
        }
        withdrawal = {"amount": -p.dispute_amount, "fee": 1500, "currency": p.currency}
        held = dict(dispute, status="needs_response", balance_transactions=[withdrawal])
        if p.disputed == "inquiry_closed":
            steps = [
                ("created", t, dict(dispute, status="warning_needs_response")),
                ("closed", t + 50, dict(dispute, status="warning_closed")),
            ]
        else:
            # created (money not yet moved) and funds_withdrawn in one second, as Stripe sends them
            steps = [("created", t, dict(dispute, status="needs_response")), ("funds_withdrawn", t, held)]
            if p.disputed == "won":
                steps.append(("funds_reinstated", t + 50, held))
                steps.append(("closed", t + 50, dict(held, status="won")))
            elif p.disputed == "lost":
                steps.append(("closed", t + 50, dict(held, status="lost")))
        for phase, created, obj in steps:
            events.append(stripe_event(p, f"dispute_{phase}", f"charge.dispute.{phase}", created, obj))
    return events


def envelope(p: Payment, event: dict[str, Any]) -> DerivedEvent:
    raw = RawEnvelope(
        source=Source.STRIPE,
        endpoint="default",
        entity=p.entity,
        provider_event_id=event["id"],
        event_type=event["type"],
        livemode=p.livemode,
        received_at=RECEIVED,
        content_type="application/json",
        body=json.dumps(event).encode(),
    )
    return derive(raw)


# -- the independent computation -------------------------------------------------------------------


def expected_totals(history: list[Payment]) -> dict[tuple[str, bool, str], dict[str, int]]:
    totals: dict[tuple[str, bool, str], dict[str, int]] = {}
    for p in history:
        t = totals.setdefault(
            (p.entity, p.livemode, p.currency),
            {"gross": 0, "refunds": 0, "disputes": 0, "fees": 0, "failed": 0},
        )
        t["gross"] += p.amount
        t["refunds"] += p.refunded
        t["disputes"] += p.dispute_amount if p.disputed in ("lost", "open") else 0
        t["fees"] += p.fee + (1500 if p.disputed in ("won", "lost", "open") else 0)
        t["failed"] += 1 if p.failed_first else 0
    return totals


def expected_orders(history: list[Payment]) -> dict[str, tuple[str, int, str | None]]:
    orders = {}
    for p in history:
        if p.order != "buyer":
            continue  # "anonymous": money, but no one to fulfil for, so no order
        if p.disputed in ("lost", "open"):
            status = "disputed"
        elif p.refunded == 0:
            status = "paid"
        else:
            status = "refunded" if p.refunded == p.amount else "partially_refunded"
        orders[f"stripe:order:cs_{p.n}"] = (status, p.refunded, f"buyer{p.n}@example.com")
    return orders


def expected_order_events(history: list[Payment]) -> set[str]:
    events = set()
    for order_id, (status, _, _) in expected_orders(history).items():
        events.add(f"{order_id}:paid")
        if status == "refunded":
            events.add(f"{order_id}:refunded")
    return events


# -- reading the state back ------------------------------------------------------------------------

TOTALS_SQL = """
SELECT entity, livemode, currency,
       sum(gross)::bigint, sum(refunds)::bigint, sum(disputes)::bigint, sum(fees)::bigint, sum(failed)::bigint
FROM (
    SELECT entity, livemode, currency, payment_key,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'payment' AND counted), 0) AS gross,
           greatest(coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund' AND counted), 0),
                    coalesce(sum(amount_minor) FILTER (WHERE kind = 'refunded_total' AND counted), 0)) AS refunds,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'dispute' AND counted), 0) AS disputes,
           coalesce(sum(amount_minor) FILTER (WHERE kind = 'fee' AND counted), 0) AS fees,
           count(*) FILTER (WHERE kind = 'failed_payment') AS failed
    FROM revenue_ledger GROUP BY 1, 2, 3, 4
) AS per_payment
GROUP BY 1, 2, 3
"""


def snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        ledger = conn.execute(
            "SELECT record_id, kind, entity, payment_key, amount_minor, currency, livemode, counted, status,"
            " version, source_event_id FROM revenue_ledger ORDER BY record_id"
        ).fetchall()
        orders = conn.execute(
            "SELECT order_id, status, refunded_minor, customer_email, entity, livemode, version"
            " FROM orders ORDER BY order_id"
        ).fetchall()
        order_events = conn.execute(
            "SELECT event_id, event_type FROM order_events ORDER BY event_id"
        ).fetchall()
        events = conn.execute(
            "SELECT provider_event_id, state, error FROM webhook_events ORDER BY provider_event_id"
        ).fetchall()
        totals = conn.execute(TOTALS_SQL).fetchall()
    return {
        "ledger": ledger,
        "orders": orders,
        "order_events": order_events,
        "events": events,
        "totals": totals,
    }


def reset(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE order_events, orders, revenue_ledger, webhook_events")


async def apply(url: str, batches: list[list[DerivedEvent]]) -> None:
    async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
        store = PostgresStore(pool)
        for batch in batches:
            for derived in batch:
                store.add(derived)
            await store.flush()


@pytest.fixture(scope="module")
def ledger_db(services: ServiceEndpoints) -> Iterator[str]:
    url = create_database(services.postgres_url, f"revstream_ledger_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def deliveries(draw: st.DrawFn, derived: list[DerivedEvent]) -> list[list[DerivedEvent]]:
    """A permutation with random duplicates, cut into random batches."""
    extra = draw(st.lists(st.sampled_from(derived), max_size=len(derived)))
    stream = draw(st.permutations(derived + extra))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=max(len(stream) - 1, 1)), max_size=5)))
    bounds = [0, *dict.fromkeys(cuts), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_order_with_duplicates_gives_the_same_exact_state(ledger_db: str, data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=1, max_value=4), label="payments")
    history = [data.draw(payments(n), label=f"payment {n}") for n in range(count)]
    derived = [envelope(p, e) for p in history for e in build_events(p, 1_700_000_000 + 5000 * p.n)]
    assert all(d.event.state.value == "processed" for d in derived), [d.event.error for d in derived]

    states = []
    for _ in range(2):
        batches = deliveries(data.draw, derived)
        reset(ledger_db)
        asyncio.run(apply(ledger_db, batches))
        states.append(snapshot(ledger_db))
    first, second = states
    assert first == second

    assert all(state == "processed" for _, state, _ in first["events"])  # nothing refused, nothing lost
    totals = {
        (entity, livemode, currency): {"gross": g, "refunds": r, "disputes": d, "fees": f, "failed": n}
        for entity, livemode, currency, g, r, d, f, n in first["totals"]
    }
    assert totals == expected_totals(history)
    orders = {
        order_id: (status, refunded, email) for order_id, status, refunded, email, *_ in first["orders"]
    }
    assert orders == expected_orders(history)
    assert {event_id for event_id, _ in first["order_events"]} == expected_order_events(history)
