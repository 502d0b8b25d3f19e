"""Writes audit receipts in the same transaction as the money-moving changes they describe.

Used by PostgresStore.flush around its upserts:

    audit = await AuditTrail.begin(cur, ledger, orders)   # first statement of the transaction
    ... ledger upsert ... RETURNING {LEDGER_STATE_COLUMNS}; audit.written(rows)
    ... order upsert, order refresh ... RETURNING {order_state_columns("o.")}; audit.written(rows)
    await audit.record(cur)                                # last statement before commit

`begin` locks the chain head (one writer at a time: gapless sequence numbers) and snapshots the
money state of every ledger row and order the batch can touch; the writes hand back, through
RETURNING, the state of every such row they changed (`written`), so the state after the writes is
the snapshot with those rows replaced, without reading the rows again. The contract that keeps it
exact: every statement of the transaction that changes a ledger row or an order returns its new
state to `written` (the ledger upsert does; for orders the refresh does, which rewrites every
order of every payment the batch touches, including the ones the order upsert wrote). `record`
then writes one receipt per row whose money state changed:
- a ledger row that was inserted, or moved to a new version whose kind, amount, currency,
  status or `counted` differs;
- an order that was inserted, or whose status, amount, currency or refunded amount changed
  (a refund, a dispute, ...).
Receipts describe what the store wrote, not what the batch said, so a replayed, duplicated or
stale event (which the forward-only upserts ignore) writes no receipt, and every new ledger kind
gets receipts without changes here. A crash rolls the receipts back with the change.
Every ANCHOR_EVERY-th receipt also writes the Merkle anchor of its block, in the same transaction.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncCursor

from sinks.postgres.receipts import (
    CHANGE_CHANGED,
    CHANGE_CREATED,
    RECEIPT_FIELDS,
    RECORD_LEDGER,
    anchor_ranges,
    canonical_time,
    merkle_root,
    values_hash,
)

LOCK_HEAD = "SELECT last_seq, last_hash, now() FROM audit_chain_head WHERE id = 1 FOR UPDATE"
# The money state of a ledger row and of an order in one shape: the fields of _Row, in order.
LEDGER_STATE_COLUMNS = (
    "'ledger', record_id, payment_key, kind, entity, livemode, amount_minor, currency, counted, status, "
    "NULL::bigint, version, source_event_id"
)


def order_state_columns(prefix: str = "") -> str:
    """The state columns of an order, qualified with `prefix` (e.g. "o.") for a RETURNING clause."""
    return (
        f"'order', {prefix}order_id, {prefix}payment_key, 'order', {prefix}entity, {prefix}livemode, "
        f"{prefix}amount_minor, {prefix}currency, NULL::boolean, {prefix}status, {prefix}refunded_minor, "
        f"{prefix}version, {prefix}source_event_id"
    )


# One round trip for the snapshot before the writes.
STATE = (
    f"SELECT {LEDGER_STATE_COLUMNS} FROM revenue_ledger WHERE record_id = ANY(%b::text[]) "
    f"UNION ALL SELECT {order_state_columns()} FROM orders "
    "WHERE order_id = ANY(%b::text[]) OR payment_key = ANY(%b::text[])"
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
_RECEIPT_TYPES = {
    "seq": "bigint",
    "version": "bigint",
    "livemode": "boolean",
    "amount_minor": "bigint",
    "counted": "boolean",
    "refunded_minor": "bigint",
}
# A batch's receipts in one statement: one array per column (recorded_at is one value per batch).
INSERT_RECEIPTS = (
    f"INSERT INTO audit_receipts ({', '.join(RECEIPT_COLUMNS)}) "
    f"SELECT {', '.join('%b::timestamptz' if c == 'recorded_at' else 'r.' + c for c in RECEIPT_COLUMNS)} "
    "FROM unnest("
    + ", ".join(f"%b::{_RECEIPT_TYPES.get(c, 'text')}[]" for c in RECEIPT_COLUMNS if c != "recorded_at")
    + f") AS r({', '.join(c for c in RECEIPT_COLUMNS if c != 'recorded_at')})"
)
_RECORDED_AT = RECEIPT_FIELDS.index("recorded_at")
assert RECEIPT_COLUMNS[:-1] == RECEIPT_FIELDS, "audit_receipts columns = Receipt fields + hash"
BLOCK_HASHES = "SELECT hash FROM audit_receipts WHERE seq BETWEEN %s AND %s ORDER BY seq"
INSERT_ANCHOR = "INSERT INTO audit_anchors (first_seq, last_seq, root) VALUES (%s, %s, %s)"
UPDATE_HEAD = "UPDATE audit_chain_head SET last_seq = %s, last_hash = %s WHERE id = 1"


class _Row(NamedTuple):
    """The money state of one ledger row or order, as stored (a row of STATE or of a RETURNING)."""

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


Key = tuple[str, str]  # (record_type, record_id)


def _rows(rows: Iterable[tuple[Any, ...]]) -> dict[Key, _Row]:
    return {(row[0], row[1]): _Row(*row) for row in rows}


@dataclass(frozen=True)
class _Change:
    before: _Row | None
    after: _Row


def diff_states(before: Mapping[Any, _Row], after: Mapping[Any, _Row]) -> list[_Change]:
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
    """One transaction's view of the audit chain: `begin` before the writes, `written` with what
    each write returned, `record` after."""

    def __init__(self, last_seq: int, last_hash: str, now: datetime, before: dict[Key, _Row]) -> None:
        self._last_seq = last_seq
        self._last_hash = last_hash
        self._now = now
        self._before = before
        self._after = dict(before)

    @classmethod
    async def begin(cls, cur: AsyncCursor[Any], ledger: Iterable[Any], orders: Iterable[Any]) -> "AuditTrail":
        """Lock the chain head and snapshot the rows the batch's ledger records and orders can touch.

        Must be the first statement of the transaction: the head lock serializes writers, so
        the snapshot and the rows handed to `written` see only this transaction's changes."""
        ledger, orders = list(ledger), list(orders)
        record_ids = sorted({r.record_id for r in ledger})
        order_ids = sorted({o.order_id for o in orders})
        payment_keys = sorted({r.payment_key for r in ledger} | {o.payment_key for o in orders})
        await cur.execute(LOCK_HEAD)
        head = await cur.fetchone()
        if head is None:
            raise RuntimeError("audit_chain_head is empty: run `revstream migrate`")
        last_seq, last_hash, now = head
        before: dict[Key, _Row] = {}
        if record_ids or order_ids or payment_keys:
            await cur.execute(STATE, (record_ids, order_ids, payment_keys))
            before = _rows(await cur.fetchall())
        return cls(last_seq, last_hash, now, before)

    def written(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """The new state of rows a write changed: rows of LEDGER_STATE_COLUMNS or
        order_state_columns(), e.g. from its RETURNING clause."""
        self._after.update(_rows(rows))

    async def record(self, cur: AsyncCursor[Any]) -> int:
        """Write the receipts (and any completed anchors) for what changed; return how many."""
        changes = diff_states(self._before, self._after)
        if not changes:
            return 0
        ledger_changes = [c for c in changes if c.after.record_type == RECORD_LEDGER]
        first_seq = self._last_seq
        recorded_at = canonical_time(self._now)  # one instant per transaction: encoded once
        rows = []
        for change in changes:
            row = change.after
            values = (  # the fields of a Receipt, in order
                self._last_seq + 1,
                row.record_type,
                row.record_id,
                row.version,
                CHANGE_CREATED if change.before is None else CHANGE_CHANGED,
                row.kind,
                row.entity,
                row.livemode,
                row.amount_minor,
                row.currency,
                row.counted,
                row.status,
                row.refunded_minor,
                _source_event(change, ledger_changes),
                self._now,
                self._last_hash,
            )
            digest = values_hash(values, recorded_at)
            rows.append((*values, digest))
            self._last_seq, self._last_hash = values[0], digest
        columns = [list(c) for i, c in enumerate(zip(*rows, strict=True)) if i != _RECORDED_AT]
        await cur.execute(INSERT_RECEIPTS, [self._now, *columns])
        for block_first, block_last in anchor_ranges(first_seq, self._last_seq):
            await cur.execute(BLOCK_HASHES, (block_first, block_last))
            hashes = [h for (h,) in await cur.fetchall()]
            await cur.execute(INSERT_ANCHOR, (block_first, block_last, merkle_root(hashes)))
        await cur.execute(UPDATE_HEAD, (self._last_seq, self._last_hash))
        return len(rows)
