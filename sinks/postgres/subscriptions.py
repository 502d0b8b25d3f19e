"""Subscription state in PostgreSQL: snapshots, current state, MRR movements, invoices.

Called by PostgresStore.flush inside its transaction, so a batch's subscription changes commit
together with its webhook events and ledger rows, or not at all.

Guarantees:
- Idempotent: snapshots are immutable and inserted once by id; invoices and invoice payments are
  forward-only upserts by `version`.
- Order-independent: a subscription's current state and its MRR movements are recomputed from its
  FULL snapshot history with schemas.subscriptions.replay_subscription, replacing the old ones, so
  any arrival order of the same events leaves identical rows.
- Safe with several sink processes: each touched subscription is locked (transaction-scoped
  advisory lock, taken in one global order) before its history is read, so two transactions adding
  snapshots to one subscription serialize and the second one sees the first one's snapshot.
"""

from collections import defaultdict
from enum import Enum
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from schemas.revenue import DerivedEvent
from schemas.subscriptions import (
    InvoicePaymentRecord,
    InvoiceRecord,
    MrrMovement,
    SubscriptionSnapshot,
    SubscriptionState,
    replay_subscription,
)

_SNAPSHOT_COLUMNS = tuple(SubscriptionSnapshot.model_fields)
_STATE_COLUMNS = tuple(SubscriptionState.model_fields)
_MOVEMENT_COLUMNS = tuple(MrrMovement.model_fields)
_INVOICE_COLUMNS = tuple(InvoiceRecord.model_fields)
_PAYMENT_COLUMNS = tuple(InvoicePaymentRecord.model_fields)


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"


def _forward_upsert(table: str, columns: tuple[str, ...], key: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return (
        f"{_insert(table, columns)} ON CONFLICT ({key}) DO UPDATE SET {updates}, updated_at = now() "
        f"WHERE {table}.version < EXCLUDED.version"
    )


INSERT_SNAPSHOT = f"{_insert('subscription_snapshots', _SNAPSHOT_COLUMNS)} ON CONFLICT DO NOTHING"
UPSERT_INVOICE = _forward_upsert("subscription_invoices", _INVOICE_COLUMNS, "invoice_key")
UPSERT_PAYMENT = _forward_upsert("invoice_payments", _PAYMENT_COLUMNS, "invoice_payment_key")
# The state row is recomputed from the whole history under the subscription's lock: overwrite it.
UPSERT_STATE = (
    f"{_insert('subscriptions', _STATE_COLUMNS)} ON CONFLICT (subscription_key) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _STATE_COLUMNS if c != "subscription_key")
    + ", updated_at = now()"
)
INSERT_MOVEMENT = _insert("mrr_movements", _MOVEMENT_COLUMNS)
DELETE_MOVEMENTS = "DELETE FROM mrr_movements WHERE subscription_key = ANY(%b::text[])"
SELECT_HISTORY = (
    f"SELECT {', '.join(_SNAPSHOT_COLUMNS)} FROM subscription_snapshots "
    "WHERE subscription_key = ANY(%b::text[]) ORDER BY subscription_key, version, source_event_id"
)
# Locks in ascending hash order (the sorted subquery feeds the outer call row by row), so two
# transactions touching overlapping subscriptions never wait on each other in a cycle.
LOCK_SUBSCRIPTIONS = (
    "SELECT pg_advisory_xact_lock(h) FROM "
    "(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(%b::text[]) AS k ORDER BY h) AS locks"
)
# Derived from subscription_invoices every time, never accumulated: re-applying it is harmless.
REFRESH_LATEST_INVOICE = """
UPDATE subscriptions AS s
SET latest_invoice_id = i.invoice_id, latest_invoice_status = i.status
FROM (
    SELECT DISTINCT ON (subscription_key) subscription_key, invoice_id, status
    FROM subscription_invoices
    WHERE subscription_key = ANY(%b::text[])
    ORDER BY subscription_key, version DESC, source_event_id DESC
) AS i
WHERE s.subscription_key = i.subscription_key
"""

MRR_TOTALS_SQL = """
SELECT entity, livemode, currency, mrr_minor, arr_minor, active_customers, active_subscriptions
FROM mrr_totals
WHERE %(livemode)s::boolean IS NULL OR livemode = %(livemode)s::boolean
ORDER BY entity, livemode, currency
"""


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return Jsonb([v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value])
    return value


def _row(model: Any, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(_plain(getattr(model, c)) for c in columns)


def _newest(records: list[Any], key: str) -> list[Any]:
    """Inside the batch: the highest (version, event id) per key; the store's guard does the rest."""
    best: dict[str, Any] = {}
    for record in records:
        current = best.get(getattr(record, key))
        if current is None or (record.version, record.source_event_id) > (
            current.version,
            current.source_event_id,
        ):
            best[getattr(record, key)] = record
    return list(best.values())


async def write_subscriptions(cur: AsyncCursor[Any], batch: list[DerivedEvent]) -> None:
    """Apply the batch's subscription snapshots, invoices and invoice payments (inside the caller's
    transaction) and recompute the state and MRR movements of every subscription they touch."""
    snapshots = list({s.snapshot_id: s for d in batch for s in d.subscription_snapshots}.values())
    invoices = _newest([i for d in batch for i in d.subscription_invoices], "invoice_key")
    payments = _newest([p for d in batch for p in d.invoice_payments], "invoice_payment_key")
    if not (snapshots or invoices or payments):
        return
    replayed = sorted({s.subscription_key for s in snapshots})
    touched = sorted(set(replayed) | {i.subscription_key for i in invoices})
    if touched:
        await cur.execute(LOCK_SUBSCRIPTIONS, (touched,))
    if snapshots:
        await cur.executemany(INSERT_SNAPSHOT, [_row(s, _SNAPSHOT_COLUMNS) for s in snapshots])
    if invoices:
        await cur.executemany(UPSERT_INVOICE, [_row(i, _INVOICE_COLUMNS) for i in invoices])
    if payments:
        await cur.executemany(UPSERT_PAYMENT, [_row(p, _PAYMENT_COLUMNS) for p in payments])
    if replayed:
        await cur.execute(SELECT_HISTORY, (replayed,))
        history: dict[str, list[SubscriptionSnapshot]] = defaultdict(list)
        for row in await cur.fetchall():
            snapshot = SubscriptionSnapshot.model_validate(dict(zip(_SNAPSHOT_COLUMNS, row, strict=True)))
            history[snapshot.subscription_key].append(snapshot)
        states, movements = [], []
        for key in replayed:
            state, moves = replay_subscription(history[key])
            states.append(state)
            movements.extend(moves)
        await cur.execute(DELETE_MOVEMENTS, (replayed,))
        if movements:
            await cur.executemany(INSERT_MOVEMENT, [_row(m, _MOVEMENT_COLUMNS) for m in movements])
        await cur.executemany(UPSERT_STATE, [_row(s, _STATE_COLUMNS) for s in states])
    if touched:
        await cur.execute(REFRESH_LATEST_INVOICE, (touched,))


async def mrr_totals(cur: AsyncCursor[Any], livemode: bool | None = None) -> list[dict[str, Any]]:
    """Current MRR, ARR (12 x MRR), active customers and subscriptions per entity, livemode and
    currency, integer minor units. `livemode=None` returns both test and live money, labelled."""
    await cur.execute(MRR_TOTALS_SQL, {"livemode": livemode})
    columns = ("entity", "livemode", "currency", "mrr", "arr", "active_customers", "active_subscriptions")
    return [dict(zip(columns, row, strict=True)) for row in await cur.fetchall()]
