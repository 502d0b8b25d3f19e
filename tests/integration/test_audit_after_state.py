"""The audit trail takes the state after a batch's writes from their RETURNING clauses instead of
reading the rows again (sinks/postgres/audit.py). Property: for any delivery order, duplicates and
batch cuts of a revenue history (payments, checkouts, refunds, disputes), and on the refund-limit
slow path, that state equals what reading the rows again at the end of the transaction gives, so
the receipts are exactly the ones the re-read wrote."""

import asyncio
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from schemas.revenue import DerivedEvent
from sinks.postgres import store as store_module
from sinks.postgres.audit import STATE, AuditTrail, _Row
from sinks.postgres.migrations import apply_migrations
from sinks.postgres.store import PostgresStore
from tests.conftest import create_database
from tests.integration.test_ledger_properties import build_events, deliveries, envelope, payments, reset
from tests.integration.test_refund_limit import charge, refund
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration]


class RereadingTrail(AuditTrail):
    """An AuditTrail that checks its after-state against a re-read of the same rows."""

    checked = 0
    scope: tuple[list[str], list[str], list[str]]

    @classmethod
    async def begin(cls, cur: AsyncCursor[Any], ledger: Iterable[Any], orders: Iterable[Any]) -> AuditTrail:
        ledger, orders = list(ledger), list(orders)
        trail = await super().begin(cur, ledger, orders)
        assert isinstance(trail, RereadingTrail)
        trail.scope = (
            sorted({r.record_id for r in ledger}),
            sorted({o.order_id for o in orders}),
            sorted({r.payment_key for r in ledger} | {o.payment_key for o in orders}),
        )
        return trail

    async def record(self, cur: AsyncCursor[Any]) -> int:
        await cur.execute(STATE, self.scope)
        reread = {(row[0], row[1]): _Row(*row) for row in await cur.fetchall()}
        assert self._after == reread
        RereadingTrail.checked += 1
        return await super().record(cur)


@pytest.fixture(scope="module")
def audit_db(services: ServiceEndpoints) -> Iterator[str]:
    url = create_database(services.postgres_url, f"revstream_after_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def apply(url: str, batches: list[list[DerivedEvent]]) -> None:
    async def run() -> None:
        async with AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool:
            store = PostgresStore(pool)
            for batch in batches:
                for derived in batch:
                    store.add(derived)
                await store.flush()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "AuditTrail", RereadingTrail)
        asyncio.run(run())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_returned_state_is_the_state_read_again(audit_db: str, data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=1, max_value=4), label="payments")
    history = [data.draw(payments(n), label=f"payment {n}") for n in range(count)]
    derived = [envelope(p, e) for p in history for e in build_events(p, 1_700_000_000 + 5000 * p.n)]
    reset(audit_db)
    before = RereadingTrail.checked
    apply(audit_db, deliveries(data.draw, derived))
    assert RereadingTrail.checked > before


def test_the_refund_limit_slow_path_too(audit_db: str) -> None:
    reset(audit_db)
    before = RereadingTrail.checked
    apply(audit_db, [[charge(1000), refund(1, 600), refund(2, 500)], [refund(2, 500)], [refund(3, 400)]])
    # Checked: the charge and the first refund (the refused batch written event by event; a refused
    # refund rolls back before its receipts, as does its re-delivery), then the third refund.
    assert RereadingTrail.checked == before + 3
