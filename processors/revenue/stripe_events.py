"""Stripe events -> revenue records, one small handler per event family.

Identity rules that make one payment count once:
- A payment's id is its PaymentIntent id, or its Charge id when the charge has no intent
  (pre-2019 API). checkout.session.completed, payment_intent.succeeded and charge.succeeded
  for the same purchase therefore all produce `stripe:payment:<pi>` and upsert one record.
- A refund's id is the Refund id. Legacy payloads without refund ids get `<charge>#<index>`.
- When a charge reports more refunded than its embedded list shows (the list is truncated, or
  omitted as in API versions since 2022-11-15), its `amount_refunded` becomes one
  `stripe:refunded_total:<charge>` record that follows the newest charge snapshot; the stores count
  max(listed + refund.* refunds, refunded totals) per payment, so no refund is counted twice.
- Disputes, failed payments, fees and refund.* events: see stripe_ledger.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.revenue.common import (
    DerivationError,
    currency_code,
    event_version,
    from_unix,
    minor_units,
    object_id,
    validated,
)
from processors.revenue.stripe_ledger import (
    COUNTED_REFUND_STATUSES,
    ledger_record,
    payment_fees,
    refunded_total,
)
from processors.revenue.stripe_ledger import HANDLERS as LEDGER_HANDLERS
from schemas.envelope import Source
from schemas.revenue import OrderRecord, RevenueKind, RevenueRecord


@dataclass(frozen=True)
class EventContext:
    """The event-level facts every handler needs."""

    event_id: str
    event_type: str
    entity: str
    livemode: bool
    created: int

    @property
    def version(self) -> int:
        return event_version(self.created, self.event_id)


Derivation = tuple[list[RevenueRecord], list[OrderRecord]]
Handler = Callable[[EventContext, dict[str, Any]], Derivation]
NOTHING: Derivation = ([], [])


def _payment(
    ctx: EventContext, payment_key: str, amount: int, currency: str, status: str, customer: str | None
) -> RevenueRecord:
    return ledger_record(
        ctx,
        RevenueKind.PAYMENT,
        payment_key,
        payment_key,
        amount,
        currency,
        counted=True,
        status=status,
        customer=customer,
    )


def checkout_session_completed(ctx: EventContext, session: dict[str, Any]) -> Derivation:
    """A paid one-off checkout: the payment and its order. Setup and subscription sessions carry
    no payment of their own (subscriptions are paid through invoices). Also handles
    checkout.session.async_payment_succeeded, when a delayed payment method settles later.

    An order needs a resolved customer: the session names a Stripe customer (`customer`) or the
    buyer's email (`customer_details.email`, or the older `customer_email`). Without either the
    money is still revenue, but there is no one to fulfil for, so no order."""
    if session.get("mode", "payment") != "payment" or session.get("payment_status") != "paid":
        return NOTHING
    payment_key = object_id(session.get("payment_intent")) or object_id(session.get("id"))
    if payment_key is None:
        raise DerivationError("checkout.session has neither payment_intent nor id")
    amount = minor_units(session, "amount_total")
    currency = currency_code(session)
    customer = object_id(session.get("customer"))
    details = session.get("customer_details")
    email = (details.get("email") if isinstance(details, dict) else None) or session.get("customer_email")
    email = email if isinstance(email, str) and email else None
    payment = _payment(ctx, payment_key, amount, currency, "succeeded", customer)
    if customer is None and email is None:
        return [payment], []  # anonymous: revenue, but not an order
    order = validated(
        OrderRecord,
        order_id=f"stripe:order:{session['id']}",
        source=Source.STRIPE,
        entity=ctx.entity,
        payment_key=payment_key,
        customer_id=customer,
        amount_minor=amount,
        currency=currency,
        livemode=ctx.livemode,
        occurred_at=from_unix(ctx.created),
        version=ctx.version,
        source_event_id=ctx.event_id,
        customer_email=email,
    )
    return [payment], [order]


def payment_intent_succeeded(ctx: EventContext, intent: dict[str, Any]) -> Derivation:
    if intent.get("status", "succeeded") != "succeeded":
        return NOTHING  # a payload whose object contradicts its type carries no money
    received = intent.get("amount_received")
    field = "amount_received" if isinstance(received, int) and received > 0 else "amount"
    payment = _payment(
        ctx,
        intent["id"],
        minor_units(intent, field),
        currency_code(intent),
        "succeeded",
        object_id(intent.get("customer")),
    )
    return [payment, *payment_fees(ctx, intent, intent["id"])], []


def charge_succeeded(ctx: EventContext, charge: dict[str, Any]) -> Derivation:
    if charge.get("status", "succeeded") not in ("succeeded", "paid") or charge.get("paid") is False:
        return NOTHING
    if charge.get("captured") is False:
        return NOTHING  # an authorisation is not revenue until captured
    captured = charge.get("amount_captured")
    field = "amount_captured" if isinstance(captured, int) and captured > 0 else "amount"
    payment_key = object_id(charge.get("payment_intent")) or charge["id"]
    payment = _payment(
        ctx,
        payment_key,
        minor_units(charge, field),
        currency_code(charge),
        "succeeded",
        object_id(charge.get("customer")),
    )
    return [payment, *payment_fees(ctx, charge, payment_key)], []


def _listed_refunds(charge: dict[str, Any]) -> list[dict[str, Any]]:
    refunds = charge.get("refunds")
    if isinstance(refunds, dict):
        refunds = refunds.get("data")
    if refunds is None:
        return []
    if not isinstance(refunds, list) or not all(isinstance(r, dict) for r in refunds):
        raise DerivationError("charge.refunds is neither a list object nor a list of refunds")
    return refunds


def _refund(
    ctx: EventContext,
    record_key: str,
    amount: int,
    currency: str,
    status: str | None,
    payment_key: str,
    customer: str | None,
) -> RevenueRecord:
    return validated(
        RevenueRecord,
        record_id=f"stripe:refund:{record_key}",
        kind=RevenueKind.REFUND,
        source=Source.STRIPE,
        entity=ctx.entity,
        payment_key=payment_key,
        amount_minor=amount,
        currency=currency,
        livemode=ctx.livemode,
        counted=status in COUNTED_REFUND_STATUSES,
        status=status or "succeeded",
        customer_id=customer,
        occurred_at=from_unix(ctx.created),
        version=ctx.version,
        source_event_id=ctx.event_id,
        source_event_type=ctx.event_type,
    )


def charge_refunded(ctx: EventContext, charge: dict[str, Any]) -> Derivation:
    """Every refund the charge lists, plus any refunded amount the list does not show."""
    charge_id = charge["id"]
    payment_key = object_id(charge.get("payment_intent")) or charge_id
    currency = currency_code(charge)
    customer = object_id(charge.get("customer"))
    records = []
    listed_total = 0
    for index, refund in enumerate(_listed_refunds(charge)):
        amount = minor_units(refund, "amount")
        status = refund.get("status")
        key = object_id(refund.get("id")) or f"{charge_id}#{index}"
        records.append(
            _refund(ctx, key, amount, currency_code(refund, currency), status, payment_key, customer)
        )
        if status in COUNTED_REFUND_STATUSES:
            listed_total += amount
    records += refunded_total(ctx, charge, payment_key, listed_total, customer)
    return records, []


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_session_completed,
    "payment_intent.succeeded": payment_intent_succeeded,
    "charge.succeeded": charge_succeeded,
    "charge.refunded": charge_refunded,
    "checkout.session.async_payment_succeeded": checkout_session_completed,
    **LEDGER_HANDLERS,
}
"""Event types that carry revenue. Every other type is acknowledged, recorded and counted, not derived."""


def _created_seconds(value: Any) -> int | None:
    """v1 events carry unix seconds; thin (v2) event notifications an ISO-8601 string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def derive_stripe_event(event: dict[str, Any], entity: str) -> tuple[EventContext | None, Derivation]:
    """Derive the records of one parsed Stripe event (already verified by ingest).

    Returns no context for event types that carry no revenue and have no readable `created`.
    """
    handler = HANDLERS.get(str(event["type"]))
    created = _created_seconds(event.get("created"))
    if created is None:
        if handler is None:
            return None, NOTHING
        raise DerivationError("event.created is not a unix timestamp")
    ctx = EventContext(
        event_id=str(event["id"]),
        event_type=str(event["type"]),
        entity=entity,
        livemode=event.get("livemode") is True,
        created=created,
    )
    if handler is None:
        return ctx, NOTHING
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    # 2013-era disputes have no id of their own (one per charge): stripe_ledger keys them by charge.
    if not isinstance(obj, dict) or not (isinstance(obj.get("id"), str) or obj.get("object") == "dispute"):
        raise DerivationError(f"{ctx.event_type} has no data.object with an id")
    return ctx, handler(ctx, obj)
