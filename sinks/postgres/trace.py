"""One buyer's path through the state store (`revstream trace <id>`): webhook events -> order ->
revenue records -> audit receipts.

The id may be a Stripe event (evt_), PaymentIntent (pi_), Charge (ch_), Checkout Session (cs_),
Refund (re_), dispute or customer (cus_) id. It is resolved to the payments it belongs to (their
`payment_key`), and each payment is shown whole. A charge paid through a PaymentIntent is stored
under the intent's id: trace the pi_ (or the cs_ / evt_ / cus_) for those; a ch_ resolves when the
charge is the payment key (no intent) or names a refund record (`<ch>:unlisted`, `<ch>#<n>`).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

# Every row that mentions the id, as the payments (payment keys) it belongs to. A record id is
# "<source>:<kind>:<provider id>[:suffix][#n]": the third part (before any '#') is the provider id.
RESOLVE = """
SELECT payment_key FROM revenue_ledger
WHERE payment_key = %(id)s OR customer_id = %(id)s OR source_event_id = %(id)s
   OR split_part(split_part(record_id, ':', 3), '#', 1) = %(id)s
UNION
SELECT payment_key FROM orders
WHERE payment_key = %(id)s OR customer_id = %(id)s OR source_event_id = %(id)s
   OR split_part(order_id, ':', 3) = %(id)s
UNION
SELECT coalesce(l.payment_key, o.payment_key) FROM audit_receipts AS a
LEFT JOIN revenue_ledger AS l ON a.record_type = 'ledger' AND l.record_id = a.record_id
LEFT JOIN orders AS o ON a.record_type = 'order' AND o.order_id = a.record_id
WHERE a.source_event_id = %(id)s AND coalesce(l.payment_key, o.payment_key) IS NOT NULL
"""
ORDERS = (
    "SELECT order_id, payment_key, status, amount_minor, currency, refunded_minor, customer_id, entity, "
    "livemode, occurred_at, version, source_event_id FROM orders WHERE payment_key = ANY(%s) "
    "ORDER BY payment_key, occurred_at, order_id"
)
LEDGER = (
    "SELECT record_id, payment_key, kind, amount_minor, currency, status, counted, customer_id, entity, "
    "livemode, occurred_at, version, source_event_id, source_event_type FROM revenue_ledger "
    "WHERE payment_key = ANY(%s) ORDER BY payment_key, version, record_id"
)
RECEIPTS = (
    "SELECT seq, record_type, record_id, change, kind, amount_minor, currency, status, counted, "
    "refunded_minor, version, source_event_id, recorded_at, hash FROM audit_receipts "
    "WHERE record_id = ANY(%s) ORDER BY seq"
)
EVENTS = (
    "SELECT provider_event_id, source, event_type, state, error, entity, livemode, event_created_at, "
    "received_at FROM webhook_events WHERE provider_event_id = ANY(%s) "
    "ORDER BY event_created_at NULLS LAST, provider_event_id"
)


@dataclass
class Payment:
    payment_key: str
    events: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Trace:
    query: str
    payments: list[Payment]
    events: list[dict[str, Any]]  # the webhook event named by the query, also when it derived nothing

    @property
    def found(self) -> bool:
        return bool(self.payments or self.events)

    def to_json(self) -> dict[str, Any]:
        def plain(row: dict[str, Any]) -> dict[str, Any]:
            return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}

        return {
            "query": self.query,
            "events": [plain(e) for e in self.events],
            "payments": [
                {
                    "payment_key": p.payment_key,
                    "events": [plain(e) for e in p.events],
                    "orders": [plain(o) for o in p.orders],
                    "records": [plain(r) for r in p.records],
                    "receipts": [plain(r) for r in p.receipts],
                }
                for p in self.payments
            ],
        }


def trace(conn: psycopg.Connection[Any], ident: str) -> Trace:
    """Everything the state store knows about the payments `ident` belongs to. Read only."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(RESOLVE, {"id": ident})
        keys = sorted(row["payment_key"] for row in cur.fetchall())
        payments = {key: Payment(key) for key in keys}
        cur.execute(ORDERS, (keys,))
        for row in cur.fetchall():
            payments[row["payment_key"]].orders.append(row)
        cur.execute(LEDGER, (keys,))
        for row in cur.fetchall():
            payments[row["payment_key"]].records.append(row)
        owner = {r["record_id"]: p for p in payments.values() for r in p.records}
        owner |= {o["order_id"]: p for p in payments.values() for o in p.orders}
        cur.execute(RECEIPTS, (sorted(owner),))
        for row in cur.fetchall():
            owner[row["record_id"]].receipts.append(row)
        # The events behind every state each row has had: the receipts keep the superseded ones.
        event_ids = {ident}
        for payment in payments.values():
            for row in payment.orders + payment.records + payment.receipts:
                event_ids.add(row["source_event_id"])
        cur.execute(EVENTS, (sorted(event_ids),))
        events = {row["provider_event_id"]: row for row in cur.fetchall()}
    for payment in payments.values():
        mentioned = {row["source_event_id"] for row in payment.orders + payment.records + payment.receipts}
        payment.events = [e for eid, e in events.items() if eid in mentioned]
    queried = [events[ident]] if ident in events else []
    return Trace(query=ident, payments=list(payments.values()), events=queried)


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "?"


def _event_line(e: dict[str, Any]) -> str:
    mode = "live" if e["livemode"] else "test"
    error = f"  error: {e['error']}" if e["error"] else ""
    return (
        f"    {_time(e['event_created_at'])}  {e['provider_event_id']}  {e['event_type']}  "
        f"{e['state']} ({mode}, entity {e['entity']}){error}"
    )


def render(result: Trace) -> str:
    """Readable text: per payment, its events, order, records and receipts in time order."""
    if not result.found:
        return (
            f"trace {result.query}: no webhook event, order, revenue record or receipt mentions it "
            "(a ch_ paid through a PaymentIntent is stored under its pi_ id)"
        )
    lines = [f"trace {result.query}: {len(result.payments)} payment(s)"]
    if result.events and not result.payments:
        lines.append(
            "  webhook event (no stored record or receipt comes from it: it derived nothing, or was superseded):"
        )
        lines += [_event_line(e) for e in result.events]
    for p in result.payments:
        lines.append(f"\npayment {p.payment_key}")
        lines.append(f"  webhook events ({len(p.events)}):")
        lines += [_event_line(e) for e in p.events]
        lines.append(f"  orders ({len(p.orders)}):")
        for o in p.orders:
            lines.append(
                f"    {o['order_id']}  {o['status']}  {o['amount_minor']} {o['currency']}  refunded "
                f"{o['refunded_minor']}  customer {o['customer_id'] or '-'}  ({o['source_event_id']})"
            )
        lines.append(f"  revenue records ({len(p.records)}):")
        for r in p.records:
            counted = "counted" if r["counted"] else "not counted"
            lines.append(
                f"    {r['record_id']}  {r['kind']}  {r['amount_minor']} {r['currency']}  {r['status']}  "
                f"{counted}  at {_time(r['occurred_at'])}  ({r['source_event_id']} {r['source_event_type']})"
            )
        lines.append(f"  audit receipts ({len(p.receipts)}):")
        for a in p.receipts:
            state = {None: "", True: " counted", False: " not counted"}[a["counted"]]
            refunded = f" refunded {a['refunded_minor']}" if a["refunded_minor"] is not None else ""
            lines.append(
                f"    #{a['seq']}  {_time(a['recorded_at'])}  {a['record_id']} {a['change']}: {a['kind']} "
                f"{a['amount_minor']} {a['currency']} {a['status']}{state}{refunded}  "
                f"({a['source_event_id']})  hash {a['hash'][:16]}..."
            )
    return "\n".join(lines)
