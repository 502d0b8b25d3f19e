"""Manual / offline entries -> revenue records (pure).

Ids come from the entry's provider event id (<entity>:<idempotency key>), so a re-sent entry
upserts the same record. A payment is also an order when it names a customer (no anonymous
orders); a refund lands on the payment named by `refund_of` (its order's status follows from
the ledger, as for Stripe), or stands alone when it names none.
"""

from processors.revenue.common import DerivationError, event_version
from schemas.envelope import RawEnvelope, Source
from schemas.manual import ManualEntry
from schemas.revenue import OrderRecord, RevenueKind, RevenueRecord


def derive_manual_entry(envelope: RawEnvelope) -> tuple[list[RevenueRecord], list[OrderRecord]]:
    entry = ManualEntry.model_validate_json(envelope.body)
    entity = envelope.entity
    entry_key = envelope.provider_event_id.removeprefix(f"{entity}:")
    if entry.kind == "payment":
        payment_key = f"manual:{entity}:{entry_key}"
    else:
        payment_key = f"manual:{entity}:{entry.refund_of or entry_key}"
    occurred = int(entry.occurred_at.timestamp())
    if occurred < 0:
        raise DerivationError("occurred_at is before 1970")
    version = event_version(occurred, envelope.provider_event_id)
    record = RevenueRecord(
        record_id=f"manual:{entry.kind}:{entity}:{entry_key}",
        kind=RevenueKind(entry.kind),
        source=Source.MANUAL,
        entity=entity,
        payment_key=payment_key,
        amount_minor=entry.amount_minor,
        currency=entry.currency,
        livemode=entry.livemode,
        counted=True,
        status="succeeded",
        customer_id=entry.customer,
        occurred_at=entry.occurred_at,
        version=version,
        source_event_id=envelope.provider_event_id,
        source_event_type=envelope.event_type,
        product=entry.product,
    )
    orders = []
    if entry.kind == "payment" and entry.customer:
        orders.append(
            OrderRecord(
                order_id=f"manual:order:{entity}:{entry_key}",
                source=Source.MANUAL,
                entity=entity,
                payment_key=payment_key,
                customer_id=entry.customer,
                amount_minor=entry.amount_minor,
                currency=entry.currency,
                livemode=entry.livemode,
                occurred_at=entry.occurred_at,
                version=version,
                source_event_id=envelope.provider_event_id,
            )
        )
    return [record], orders
