"""Verifies the audit chain end to end (`revstream audit verify`).

Checks, in one read-only REPEATABLE READ snapshot (so a running pipeline does not disturb it):
1. every receipt, in sequence order: sequence numbers 1..N without gaps, `prev_hash` equal to the
   previous receipt's stored hash (64 zeros for #1), and the stored hash equal to the SHA-256 of
   the receipt's canonical encoding recomputed from its columns (sinks/postgres/receipts.py);
2. every block of ANCHOR_EVERY receipts has its anchor, whose Merkle root equals the root
   recomputed from the block's stored hashes; no anchor points past the chain;
3. the chain head (last sequence and hash) equals the last receipt;
4. the current state agrees with the chain: every ledger row and order has a receipt, and its
   latest receipt carries the row's current money state.
Problems are reported in chain order, so the first one names the first broken receipt.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import IsolationLevel

from sinks.postgres.receipts import ANCHOR_EVERY, GENESIS_HASH, Receipt, merkle_root, receipt_hash

RECEIPTS = (
    "SELECT seq, record_type, record_id, version, change, kind, entity, livemode, amount_minor, "
    "currency, counted, status, refunded_minor, source_event_id, recorded_at, prev_hash, hash "
    "FROM audit_receipts ORDER BY seq"
)
# Rows whose money state has no receipt, or differs from the row's latest receipt.
LEDGER_VS_RECEIPTS = """
SELECT l.record_id, r.seq, l.kind, l.amount_minor, l.currency, l.status,
       CASE WHEN l.counted THEN 'counted' ELSE 'not counted' END
FROM revenue_ledger AS l
LEFT JOIN LATERAL (
    SELECT * FROM audit_receipts AS a
    WHERE a.record_id = l.record_id AND a.record_type = 'ledger' ORDER BY a.seq DESC LIMIT 1
) AS r ON true
WHERE r.seq IS NULL
   OR (r.kind, r.amount_minor, r.currency, r.counted, r.status)
      IS DISTINCT FROM (l.kind, l.amount_minor, l.currency, l.counted, l.status)
ORDER BY r.seq NULLS LAST, l.record_id
LIMIT %s
"""
ORDERS_VS_RECEIPTS = """
SELECT o.order_id, r.seq, 'order', o.amount_minor, o.currency, o.status, 'refunded ' || o.refunded_minor
FROM orders AS o
LEFT JOIN LATERAL (
    SELECT * FROM audit_receipts AS a
    WHERE a.record_id = o.order_id AND a.record_type = 'order' ORDER BY a.seq DESC LIMIT 1
) AS r ON true
WHERE r.seq IS NULL
   OR (r.amount_minor, r.currency, r.refunded_minor, r.status)
      IS DISTINCT FROM (o.amount_minor, o.currency, o.refunded_minor, o.status)
ORDER BY r.seq NULLS LAST, o.order_id
LIMIT %s
"""
PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Problem:
    """One thing that does not verify. `seq` / `record_id` name the receipt (or row) concerned."""

    what: str
    seq: int | None = None
    record_id: str | None = None

    def describe(self) -> str:
        where = []
        if self.seq is not None:
            where.append(f"receipt #{self.seq}")
        if self.record_id is not None:
            where.append(f"record {self.record_id}")
        return f"{', '.join(where)}: {self.what}" if where else self.what


@dataclass
class Report:
    receipts: int = 0
    anchors: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    ledger_rows: int = 0
    orders: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Checker:
    def __init__(self, anchors: dict[int, tuple[int, str]], report: Report, max_problems: int) -> None:
        self.anchors = anchors
        self.report = report
        self.max_problems = max_problems
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.block: list[str] = []

    def problem(self, what: str, seq: int | None = None, record_id: str | None = None) -> None:
        if len(self.report.problems) < self.max_problems:
            self.report.problems.append(Problem(what, seq, record_id))

    def receipt(self, row: tuple[Any, ...]) -> None:
        *fields, stored_hash = row
        receipt = Receipt(*fields)
        seq, record_id = receipt.seq, receipt.record_id
        if seq != self.expected_seq:
            missing = f"#{self.expected_seq}" + (f"..#{seq - 1}" if seq - 1 > self.expected_seq else "")
            self.problem(f"sequence gap: receipt(s) {missing} missing before it", seq, record_id)
            self.block = []  # the blocks no longer line up; anchors of this block are not checked
        if receipt.prev_hash != self.prev_hash:
            self.problem(
                f"chain link broken: prev_hash {receipt.prev_hash[:16]}... is not the hash of the "
                f"receipt before it ({self.prev_hash[:16]}...)",
                seq,
                record_id,
            )
        recomputed = receipt_hash(receipt)
        if recomputed != stored_hash:
            self.problem(
                f"hash mismatch: its contents were changed after it was written (stored "
                f"{stored_hash[:16]}..., recomputed {recomputed[:16]}...)",
                seq,
                record_id,
            )
        self.report.receipts += 1
        self.expected_seq = seq + 1
        self.prev_hash = stored_hash
        self.block.append(stored_hash)
        if seq % ANCHOR_EVERY == 0:
            self.anchor(seq - ANCHOR_EVERY + 1, seq)

    def anchor(self, first: int, last: int) -> None:
        anchor = self.anchors.pop(first, None)
        if anchor is None:
            self.problem(f"anchor for receipts #{first}..#{last} is missing", last)
        elif anchor[0] != last:
            self.problem(f"anchor for receipts #{first}.. ends at #{anchor[0]}, expected #{last}", last)
        elif len(self.block) != ANCHOR_EVERY:
            pass  # a gap inside the block was reported already; its root cannot be recomputed
        elif merkle_root(self.block) != anchor[1]:
            self.problem(
                f"Merkle root of receipts #{first}..#{last} does not match its anchor "
                f"({anchor[1][:16]}...): a receipt in this block was rewritten",
                last,
            )
        else:
            self.report.anchors += 1
        self.block = []


def verify(
    conn: psycopg.Connection[Any],
    progress: Callable[[int, int], None] | None = None,
    max_problems: int = 20,
) -> Report:
    """Verify the whole chain and its agreement with the current state; never writes."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    report = Report()
    with conn.transaction():
        head = conn.execute("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1").fetchone()
        if head is None:
            report.problems.append(Problem("audit_chain_head has no row: the chain was never initialised"))
            return report
        report.head_seq, report.head_hash = head
        anchors = {
            first: (last, root)
            for first, last, root in conn.execute("SELECT first_seq, last_seq, root FROM audit_anchors")
        }
        checker = _Checker(anchors, report, max_problems)
        with conn.cursor(name="audit_receipts_scan") as cur:
            cur.itersize = 5000
            cur.execute(RECEIPTS)
            for row in cur:
                checker.receipt(row)
                if progress is not None and report.receipts % PROGRESS_EVERY == 0:
                    progress(report.receipts, report.head_seq)
        last_seq = checker.expected_seq - 1
        if (report.head_seq, report.head_hash) != (last_seq, checker.prev_hash):
            checker.problem(
                f"chain head says #{report.head_seq} ({report.head_hash[:16]}...) but the last receipt "
                f"is #{last_seq} ({checker.prev_hash[:16]}...): receipts were removed or added",
                last_seq or None,
            )
        for first, (last, _) in sorted(anchors.items()):
            checker.problem(f"anchor for receipts #{first}..#{last} points past the chain", first)
        report.ledger_rows = conn.execute("SELECT count(*) FROM revenue_ledger").fetchone()[0]  # type: ignore[index]
        report.orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]  # type: ignore[index]
        for table, query in (("ledger row", LEDGER_VS_RECEIPTS), ("order", ORDERS_VS_RECEIPTS)):
            for record_id, seq, *state in conn.execute(query, (max_problems,)):
                now = " ".join(str(v) for v in state)
                if seq is None:
                    checker.problem(f"{table} ({now}) has no receipt", None, record_id)
                else:
                    checker.problem(
                        f"{table} is now ({now}), not what its latest receipt says", seq, record_id
                    )
    return report


def summary(report: Report) -> str:
    """One paragraph for the operator: the totals when all is good, else the first broken receipt."""
    if report.ok:
        return (
            f"audit verify: OK: {report.receipts} receipts (chain head #{report.head_seq} "
            f"{report.head_hash[:16]}...), {report.anchors} Merkle anchors, {report.ledger_rows} ledger "
            f"rows and {report.orders} orders agree with their latest receipts"
        )
    first = report.problems[0]
    lines = [f"audit verify: FAILED at {first.describe()}"]
    if len(report.problems) > 1:
        lines.append(f"{len(report.problems)} problems found (at most 20 listed):")
        lines += [f"  - {p.describe()}" for p in report.problems]
    lines.append(
        f"checked {report.receipts} receipts; chain head #{report.head_seq}; Merkle anchors that verified: "
        f"{report.anchors}"
    )
    return "\n".join(lines)
