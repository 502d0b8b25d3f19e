"""Writes audit receipts in the same transaction as the money-moving changes they describe.

Used by PostgresStore.flush in two calls around its upserts:

    audit = await AuditTrail.begin(cur, ledger, orders)   # first statement of the transaction
    ... upserts of the ledger and orders, order refresh ...
    await audit.record(cur)                                # last statement before commit

`begin` locks the chain head (one writer at a time: gapless sequence numbers) and snapshots the
money state of every ledger row and order the batch can touch; `record` reads the same rows
again and writes one receipt per row whose money state changed:
- a ledger row that was inserted, or moved to a new version whose kind, amount, currency,
  status or `counted` differs;
- an order that was inserted, or whose status, amount, currency or refunded amount changed
  (a refund, a dispute, ...).
Receipts describe what the store wrote, not what the batch said, so a replayed, duplicated or
stale event (which the forward-only upserts ignore) writes no receipt, and every new ledger kind
gets receipts without changes here. A crash rolls the receipts back with the change.
Every ANCHOR_EVERY-th receipt also writes the Merkle anchor of its block, in the same transaction.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor

from sinks.postgres.receipts import (
    CHANGE_CHANGED,
    CHANGE_CREATED,
    RECORD_LEDGER,
    RECORD_ORDER,
    Receipt,
    anchor_ranges,
    merkle_root,
    receipt_hash,
)

LOCK_HEAD = "SELECT last_seq, last_hash, now() FROM audit_chain_head WHERE id = 1 FOR UPDATE"
LEDGER_STATE = (
    "SELECT record_id, payment_key, kind, entity, livemode, amount_minor, currency, counted, status, "
    "version, source_event_id FROM revenue_ledger WHERE record_id = ANY(%s)"
)
ORDER_STATE = (
    "SELECT order_id, payment_key, entity, livemode, amount_minor, currency, status, refunded_minor, "
    "version, source_event_id FROM orders WHERE order_id = ANY(%s) OR payment_key = ANY(%s)"
)
RECEIPT_COLUMNS = (
    "seq",
    "record_type",
    "record_id",
    "version",
    "change",
    "kind",
    "entity",
    "livemode",
    "amount_minor",
    "currency",
    "counted",
    "status",
    "refunded_minor",
    "source_event_id",
    "recorded_at",
    "prev_hash",
    "hash",
)
INSERT_RECEIPT = (
    f"INSERT INTO audit_receipts ({', '.join(RECEIPT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(RECEIPT_COLUMNS))})"
)
BLOCK_HASHES = "SELECT hash FROM audit_receipts WHERE seq BETWEEN %s AND %s ORDER BY seq"
INSERT_ANCHOR = "INSERT INTO audit_anchors (first_seq, last_seq, root) VALUES (%s, %s, %s)"
UPDATE_HEAD = "UPDATE audit_chain_head SET last_seq = %s, last_hash = %s WHERE id = 1"


@dataclass(frozen=True)
class _Row:
    """The money state of one ledger row or order, as stored."""

    record_type: str
    record_id: str
    payment_key: str
    kind: str
    entity: str
    livemode: bool
    amount_minor: int
    currency: str
    counted: bool | None
    status: str
    refunded_minor: int | None
    version: int
    source_event_id: str

    def money(self) -> tuple[Any, ...]:
        """What a receipt is about; a change in anything else (version, event id) writes none."""
        return (self.kind, self.amount_minor, self.currency, self.counted, self.status, self.refunded_minor)


def _ledger_row(row: tuple[Any, ...]) -> _Row:
    record_id, payment_key, kind, entity, livemode, amount, currency, counted, status, version, event = row
    return _Row(
        RECORD_LEDGER,
        record_id,
        payment_key,
        kind,
        entity,
        livemode,
        amount,
        currency,
        counted,
        status,
        None,
        version,
        event,
    )


def _order_row(row: tuple[Any, ...]) -> _Row:
    order_id, payment_key, entity, livemode, amount, currency, status, refunded, version, event = row
    return _Row(
        RECORD_ORDER,
        order_id,
        payment_key,
        "order",
        entity,
        livemode,
        amount,
        currency,
        None,
        status,
        refunded,
        version,
        event,
    )


@dataclass(frozen=True)
class _Change:
    before: _Row | None
    after: _Row


def diff_states(before: dict[str, _Row], after: dict[str, _Row]) -> list[_Change]:
    """The rows whose money state differs (or that are new), grouped per payment: ledger rows
    first, then the order, each in id order, so a batch always yields receipts in the same order."""
    changes = [
        _Change(before.get(key), row)
        for key, row in after.items()
        if key not in before or before[key].money() != row.money()
    ]
    changes.sort(key=lambda c: (c.after.payment_key, c.after.record_type != RECORD_LEDGER, c.after.record_id))
    return changes


def _source_event(change: _Change, ledger_changes: list[_Change]) -> str:
    """The event behind a change. An order whose own row did not move changed because of a ledger
    change of the same payment in this batch (a refund, a dispute): name the newest such event."""
    row = change.after
    if row.record_type == RECORD_LEDGER or change.before is None or change.before.version != row.version:
        return row.source_event_id
    causes = [c.after for c in ledger_changes if c.after.payment_key == row.payment_key]
    return max(causes, key=lambda r: r.version).source_event_id if causes else row.source_event_id


class AuditTrail:
    """One transaction's view of the audit chain: `begin` before the writes, `record` after."""

    def __init__(
        self,
        last_seq: int,
        last_hash: str,
        now: datetime,
        record_ids: list[str],
        order_ids: list[str],
        payment_keys: list[str],
        before: dict[str, _Row],
    ) -> None:
        self._last_seq = last_seq
        self._last_hash = last_hash
        self._now = now
        self._record_ids = record_ids
        self._order_ids = order_ids
        self._payment_keys = payment_keys
        self._before = before

    @staticmethod
    async def _state(
        cur: AsyncCursor[Any], record_ids: list[str], order_ids: list[str], payment_keys: list[str]
    ) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        if record_ids:
            await cur.execute(LEDGER_STATE, (record_ids,))
            for row in await cur.fetchall():
                rows[f"{RECORD_LEDGER}:{row[0]}"] = _ledger_row(row)
        if order_ids or payment_keys:
            await cur.execute(ORDER_STATE, (order_ids, payment_keys))
            for row in await cur.fetchall():
                rows[f"{RECORD_ORDER}:{row[0]}"] = _order_row(row)
        return rows

    @classmethod
    async def begin(cls, cur: AsyncCursor[Any], ledger: Iterable[Any], orders: Iterable[Any]) -> "AuditTrail":
        """Lock the chain head and snapshot the rows the batch's ledger records and orders can touch.

        Must be the first statement of the transaction: the head lock serializes writers, so
        the before/after snapshots see only this transaction's changes."""
        ledger, orders = list(ledger), list(orders)
        record_ids = sorted({r.record_id for r in ledger})
        order_ids = sorted({o.order_id for o in orders})
        payment_keys = sorted({r.payment_key for r in ledger} | {o.payment_key for o in orders})
        await cur.execute(LOCK_HEAD)
        head = await cur.fetchone()
        if head is None:
            raise RuntimeError("audit_chain_head is empty: run `revstream migrate`")
        last_seq, last_hash, now = head
        before = await cls._state(cur, record_ids, order_ids, payment_keys)
        return cls(last_seq, last_hash, now, record_ids, order_ids, payment_keys, before)

    async def record(self, cur: AsyncCursor[Any]) -> int:
        """Write the receipts (and any completed anchors) for what changed; return how many."""
        after = await self._state(cur, self._record_ids, self._order_ids, self._payment_keys)
        changes = diff_states(self._before, after)
        if not changes:
            return 0
        ledger_changes = [c for c in changes if c.after.record_type == RECORD_LEDGER]
        first_seq = self._last_seq
        rows = []
        for change in changes:
            row = change.after
            receipt = Receipt(
                seq=self._last_seq + 1,
                record_type=row.record_type,
                record_id=row.record_id,
                version=row.version,
                change=CHANGE_CREATED if change.before is None else CHANGE_CHANGED,
                kind=row.kind,
                entity=row.entity,
                livemode=row.livemode,
                amount_minor=row.amount_minor,
                currency=row.currency,
                counted=row.counted,
                status=row.status,
                refunded_minor=row.refunded_minor,
                source_event_id=_source_event(change, ledger_changes),
                recorded_at=self._now,
                prev_hash=self._last_hash,
            )
            digest = receipt_hash(receipt)
            rows.append(tuple(getattr(receipt, c) for c in RECEIPT_COLUMNS[:-1]) + (digest,))
            self._last_seq, self._last_hash = receipt.seq, digest
        await cur.executemany(INSERT_RECEIPT, rows)
        for block_first, block_last in anchor_ranges(first_seq, self._last_seq):
            await cur.execute(BLOCK_HASHES, (block_first, block_last))
            hashes = [h for (h,) in await cur.fetchall()]
            await cur.execute(INSERT_ANCHOR, (block_first, block_last, merkle_root(hashes)))
        await cur.execute(UPDATE_HEAD, (self._last_seq, self._last_hash))
        return len(rows)
