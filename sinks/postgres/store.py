"""Writes derived events to PostgreSQL: webhook event state, the revenue ledger and orders.

Guarantees:
- One flush is one transaction: an event's record, its ledger rows and the order status it
  changes are committed together or not at all (a refund never updates the ledger without
  the order).
- Idempotent and order-independent: every upsert is keyed by a deterministic id and only moves
  forward (`version`, event time + tie-break), so re-delivered or reordered batches leave the
  same rows.
- Never a poison batch: an event whose refund would exceed its charge (refused by the database,
  see migration 0002) is recorded as failed with the reason, and the rest of the batch is written.
"""

import logging
import types
import typing
from datetime import datetime
from enum import Enum
from operator import attrgetter
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.errors import CheckViolation
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from schemas.revenue import DerivedEvent, EventState, OrderRecord, RevenueRecord, WebhookEventRecord
from sinks.postgres.audit import LEDGER_STATE_COLUMNS, AuditTrail, order_state_columns
from sinks.postgres.order_events import RECORD_ORDER_EVENTS
from sinks.postgres.subscriptions import write_subscriptions

log = logging.getLogger("revstream.sinks.postgres")
REFUND_LIMIT = "refunds_within_charge"  # the database rule's name (migrations 0002, 0070)

_EVENT_COLUMNS = (
    "source",
    "provider_event_id",
    "event_type",
    "entity",
    "livemode",
    "received_at",
    "event_created_at",
    "state",
    "error",
)
_LEDGER_COLUMNS = tuple(RevenueRecord.model_fields)
_ORDER_COLUMNS = tuple(OrderRecord.model_fields)
_PG_TYPES: dict[Any, str] = {str: "text", int: "bigint", bool: "boolean", datetime: "timestamptz"}


class _Columns:
    """A model's fields as PostgreSQL arrays: a batch is written by one INSERT ... SELECT FROM
    unnest(...) (one statement, one plan, one trigger call per table) instead of one per row."""

    def __init__(self, model: type[BaseModel], columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.types: list[str] = []
        self._enums: list[int] = []  # positions of enum columns, written as their values
        for i, name in enumerate(columns):
            kind = model.model_fields[name].annotation
            if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            if isinstance(kind, type) and issubclass(kind, Enum):
                self._enums.append(i)
                self.types.append("text")
            else:
                self.types.append(_PG_TYPES[kind])  # KeyError: map the new type here
        if len(columns) < 2:
            raise ValueError("_Columns needs two columns or more (attrgetter of one is not a tuple)")
        self._get = attrgetter(*columns)

    def unnest(self) -> str:
        """`SELECT * FROM unnest(%b::text[], ...)`: the rows, as many placeholders as columns."""
        return "SELECT * FROM unnest(" + ", ".join(f"%b::{t}[]" for t in self.types) + ")"

    def arrays(self, records: list[Any]) -> list[list[Any]]:
        """One list per column (enums as their values), in the order of `columns`."""
        if not records:
            return [[] for _ in self.columns]
        out = [list(column) for column in zip(*map(self._get, records), strict=True)]
        for i in self._enums:
            out[i] = [v.value for v in out[i]]
        return out


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _row(model: Any, columns: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(_plain(getattr(model, c)) for c in columns)


EVENTS = _Columns(WebhookEventRecord, _EVENT_COLUMNS)
LEDGER = _Columns(RevenueRecord, _LEDGER_COLUMNS)
ORDERS = _Columns(OrderRecord, _ORDER_COLUMNS)


def _upsert(
    table: str, table_columns: _Columns, key: tuple[str, ...], guard: str, returning: str = ""
) -> str:
    columns = table_columns.columns
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) {table_columns.unnest()} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}, updated_at = now() "
        f"WHERE {table}.{guard} < EXCLUDED.{guard}" + (f" RETURNING {returning}" if returning else "")
    )


UPSERT_EVENTS = (
    f"INSERT INTO webhook_events ({', '.join(_EVENT_COLUMNS)}) {EVENTS.unnest()} "
    "ON CONFLICT (source, provider_event_id) DO UPDATE SET "
    "state = EXCLUDED.state, error = EXCLUDED.error, event_created_at = EXCLUDED.event_created_at, "
    "processed_at = now()"
)
# The one-row form, for recording a refused event on the slow path.
UPSERT_EVENT = (
    f"INSERT INTO webhook_events ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_EVENT_COLUMNS))}) "
    "ON CONFLICT (source, provider_event_id) DO UPDATE SET "
    "state = EXCLUDED.state, error = EXCLUDED.error, event_created_at = EXCLUDED.event_created_at, "
    "processed_at = now()"
)
# The ledger rows it inserted or moved forward come back as audit state (AuditTrail.written).
UPSERT_LEDGER = _upsert("revenue_ledger", LEDGER, ("record_id",), "version", LEDGER_STATE_COLUMNS)
UPSERT_ORDERS = _upsert("orders", ORDERS, ("order_id",), "version")

# An order's refund state is derived from the ledger, never accumulated, so re-applying it is harmless.
# Refunds: max(listed / refund.* refunds, the charges' own refunded totals) (see RevenueKind).
# Disputed: a dispute of the payment is open or lost (won, reinstated, inquiry closed or refunded
# instead: back to the refund-based status).
REFRESH_ORDER_REFUNDS = """
UPDATE orders AS o
SET refunded_minor = r.refunded,
    status = CASE WHEN r.disputed THEN 'disputed'
                  WHEN r.refunded = 0 THEN 'paid'
                  WHEN r.refunded >= o.amount_minor THEN 'refunded'
                  ELSE 'partially_refunded' END,
    updated_at = now()
FROM (
    SELECT k.payment_key,
           GREATEST(
               COALESCE(SUM(l.amount_minor) FILTER (WHERE l.kind = 'refund' AND l.counted), 0),
               COALESCE(SUM(l.amount_minor) FILTER (WHERE l.kind = 'refunded_total' AND l.counted), 0)
           ) AS refunded,
           COALESCE(BOOL_OR(l.kind = 'dispute' AND l.status NOT IN
                            ('won', 'funds_reinstated', 'warning_closed', 'charge_refunded')), false)
               AS disputed
    FROM unnest(%b::text[]) AS k(payment_key)
    LEFT JOIN revenue_ledger AS l ON l.payment_key = k.payment_key
    GROUP BY k.payment_key
) AS r
WHERE o.payment_key = r.payment_key
RETURNING """ + order_state_columns("o.")


def _newest(records: list[Any], key: str) -> list[Any]:
    """Dedupe inside the batch: keep the highest version per id (the store guard does the rest)."""
    best: dict[str, Any] = {}
    for record in records:
        current = best.get(getattr(record, key))
        if current is None or record.version > current.version:
            best[getattr(record, key)] = record
    return sorted(best.values(), key=lambda r: (r.payment_key, getattr(r, key)))  # one lock order


async def _write(cur: AsyncCursor[Any], batch: list[DerivedEvent]) -> None:
    """Everything a batch of derived events implies, inside the caller's transaction."""
    events: dict[tuple[str, str], WebhookEventRecord] = {}
    for derived in batch:
        events[(derived.event.source.value, derived.event.provider_event_id)] = derived.event  # last wins
    ledger = _newest([r for d in batch for r in d.revenue], "record_id")
    orders = _newest([o for d in batch for o in d.orders], "order_id")
    touched = sorted({r.payment_key for r in ledger} | {o.payment_key for o in orders})
    audit = await AuditTrail.begin(cur, ledger, orders)  # locks the chain: one writer at a time
    # Each statement gets each key once (ON CONFLICT cannot touch a row twice), in key order (one
    # lock order for every writer of these rows, the raw archive included).
    await cur.execute(UPSERT_EVENTS, EVENTS.arrays([events[k] for k in sorted(events)]))
    if ledger:
        await cur.execute(UPSERT_LEDGER, LEDGER.arrays(ledger))
        audit.written(await cur.fetchall())  # the rows it inserted or moved forward
    if orders:
        await cur.execute(UPSERT_ORDERS, ORDERS.arrays(orders))
    if touched:
        await cur.execute(REFRESH_ORDER_REFUNDS, (touched,))
        audit.written(await cur.fetchall())  # every order of these payments, the upserted ones included
        await cur.execute(RECORD_ORDER_EVENTS, (touched,))
    await write_subscriptions(cur, batch)  # same transaction: all or nothing
    await audit.record(cur)  # receipts for what changed, committed with the change


def _is_refund_limit(exc: CheckViolation) -> bool:
    return exc.diag.constraint_name == REFUND_LIMIT


async def _write_one_by_one(conn: AsyncConnection[Any], batch: list[DerivedEvent]) -> None:
    """The slow path after the database refused a refund: each event in its own savepoint; an
    event that breaks the refund rule changes nothing but its own record, now failed with why."""
    async with conn.transaction(), conn.cursor() as cur:
        for derived in batch:
            try:
                async with conn.transaction():
                    await _write(cur, [derived])
            except CheckViolation as exc:
                if not _is_refund_limit(exc):
                    raise
                reason = f"refused: {exc.diag.message_primary}"[:500]
                log.warning("event %s %s", derived.event.provider_event_id, reason)
                failed = derived.event.model_copy(update={"state": EventState.FAILED, "error": reason})
                await cur.execute(UPSERT_EVENT, _row(failed, _EVENT_COLUMNS))


class PostgresStore:
    """Buffers derived events with `add` and writes them in one transaction with `flush`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._buffer: list[DerivedEvent] = []

    def add(self, derived: DerivedEvent) -> None:
        self._buffer.append(derived)

    async def flush(self) -> int:
        """Write the buffered events; return how many. The buffer is cleared even on failure:
        the caller re-delivers the batch from Kafka (offsets were not committed)."""
        try:
            if not self._buffer:
                return 0
            async with self._pool.connection() as conn:
                try:
                    async with conn.transaction(), conn.cursor() as cur:
                        await _write(cur, self._buffer)
                except CheckViolation as exc:
                    if not _is_refund_limit(exc):
                        raise
                    await _write_one_by_one(conn, self._buffer)
            return len(self._buffer)
        finally:
            self._buffer.clear()
