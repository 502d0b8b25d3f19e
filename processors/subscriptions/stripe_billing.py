"""Stripe subscription and invoice events -> subscription snapshots and invoice records.

One small handler per event family, dispatched through HANDLERS. Shapes handled (see the fixtures'
SOURCES.md for the api_versions):
- subscriptions: 2012-2013 payloads without a subscription id (one subscription per customer, keyed
  `legacy:<customer>`) and with one `plan` + `quantity`; `items` with `plan` (2017+) or `price`
  (2020+); current_period_* on the subscription or, since 2025, on its items.
- invoices: the subscription in `invoice.subscription` (until 2025), in
  `invoice.parent.subscription_details.subscription` (2025+), or only on a line (`type:
  subscription` lines, whose id was the subscription's before 2014; `line.parent.
  subscription_item_details` since 2025). An invoice that names no subscription is a one-off
  invoice: revenue (the ledger's business), not subscription state, so nothing is derived here.
- invoice_payment.paid (2025+): one payment towards an invoice, recorded by its own id.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processors.revenue.common import (
    DerivationError,
    currency_code,
    from_unix,
    minor_units,
    object_id,
)
from processors.revenue.stripe_events import EventContext
from processors.subscriptions.mrr import MixedCurrencies, subscription_pricing
from schemas.envelope import Source
from schemas.subscriptions import InvoicePaymentRecord, InvoiceRecord, SubscriptionSnapshot


@dataclass(frozen=True)
class BillingDerivation:
    """What one billing event implies. `note` says why an authentic event yields nothing
    (an inconsistent payload that is recorded but not counted)."""

    snapshots: list[SubscriptionSnapshot] = field(default_factory=list)
    invoices: list[InvoiceRecord] = field(default_factory=list)
    invoice_payments: list[InvoicePaymentRecord] = field(default_factory=list)
    note: str | None = None

    def __bool__(self) -> bool:
        return bool(self.snapshots or self.invoices or self.invoice_payments)


NOTHING = BillingDerivation()
Handler = Callable[[EventContext, dict[str, Any]], BillingDerivation]
TERMINAL_STATUSES = frozenset({"canceled", "incomplete_expired"})


def subscription_key(subscription_id: str) -> str:
    return f"stripe:subscription:{subscription_id}"


def _time(value: Any) -> datetime | None:
    return from_unix(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _item_periods(subscription: dict[str, Any], name: str) -> list[int]:
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else items
    if not isinstance(data, list):
        return []
    return [i[name] for i in data if isinstance(i, dict) and isinstance(i.get(name), int)]


def _period(subscription: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The current period from the subscription, or (2025+) the earliest start / latest end of its items."""
    starts = _item_periods(subscription, "current_period_start")
    ends = _item_periods(subscription, "current_period_end")
    start = _time(subscription.get("current_period_start")) or (_time(min(starts)) if starts else None)
    end = _time(subscription.get("current_period_end")) or (_time(max(ends)) if ends else None)
    return start, end


def subscription_event(ctx: EventContext, subscription: dict[str, Any]) -> BillingDerivation:
    """created / updated / deleted / paused / resumed: the subscription as this event shows it."""
    customer = object_id(subscription.get("customer"))
    subscription_id = object_id(subscription.get("id"))
    if subscription_id is None:
        if customer is None:
            raise DerivationError("subscription has neither an id nor a customer")
        subscription_id = f"legacy:{customer}"  # pre-2014: at most one subscription per customer
    status = subscription.get("status")
    if not isinstance(status, str) or not status:
        raise DerivationError("subscription.status is missing")
    if ctx.event_type == "customer.subscription.deleted" and status not in TERMINAL_STATUSES:
        status = "canceled"  # the event says it ended, whatever the embedded object claims
    try:
        pricing = subscription_pricing(subscription, status)
    except MixedCurrencies as exc:
        return BillingDerivation(note=f"inconsistent payload, not counted: {exc}")
    key = subscription_key(subscription_id)
    start, end = _period(subscription)
    snapshot = SubscriptionSnapshot(
        snapshot_id=f"{key}@{ctx.version}:{ctx.event_id}",
        subscription_key=key,
        subscription_id=subscription_id,
        source=Source.STRIPE,
        entity=ctx.entity,
        livemode=ctx.livemode,
        customer_id=customer,
        status=status,
        currency=pricing.currency,
        mrr_minor=pricing.mrr_minor,
        items=pricing.items,
        discounts=pricing.discounts,
        cancel_at_period_end=subscription.get("cancel_at_period_end") is True,
        current_period_start=start,
        current_period_end=end,
        canceled_at=_time(subscription.get("canceled_at")),
        ended_at=_time(subscription.get("ended_at")),
        trial_end=_time(subscription.get("trial_end")),
        occurred_at=from_unix(ctx.created),
        version=ctx.version,
        source_event_id=ctx.event_id,
        source_event_type=ctx.event_type,
    )
    return BillingDerivation(snapshots=[snapshot])


def trial_will_end(ctx: EventContext, subscription: dict[str, Any]) -> BillingDerivation:
    """A reminder three days before a trial ends; the state change comes with its own event."""
    return NOTHING


def _lines(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    lines = invoice.get("lines")
    data = lines.get("data") if isinstance(lines, dict) else lines
    return [line for line in data if isinstance(line, dict)] if isinstance(data, list) else []


def invoice_subscription(invoice: dict[str, Any]) -> str | None:
    """The subscription an invoice bills, across API versions; None for a one-off invoice."""
    direct = object_id(invoice.get("subscription"))
    if direct:
        return direct
    parent = invoice.get("parent")
    if isinstance(parent, dict) and isinstance(parent.get("subscription_details"), dict):
        found = object_id(parent["subscription_details"].get("subscription"))
        if found:
            return found
    for line in _lines(invoice):
        line_parent = line.get("parent")
        if isinstance(line_parent, dict) and isinstance(line_parent.get("subscription_item_details"), dict):
            found = object_id(line_parent["subscription_item_details"].get("subscription"))
            if found:
                return found
        if line.get("type") == "subscription":
            found = object_id(line.get("subscription")) or object_id(line.get("id"))
            if found:
                return found
    return None


def invoice_event(ctx: EventContext, invoice: dict[str, Any]) -> BillingDerivation:
    """invoice.paid / payment_succeeded / payment_failed of a subscription invoice."""
    subscription_id = invoice_subscription(invoice)
    if subscription_id is None:
        return NOTHING
    lines = _lines(invoice)
    currency = currency_code(invoice, lines[0].get("currency") if lines else None)
    due_field = "amount_due" if invoice.get("amount_due") is not None else "total"
    amount_due = minor_units(invoice, due_field)
    paid = invoice.get("status") == "paid" or invoice.get("paid") is True
    if invoice.get("amount_paid") is not None:
        amount_paid = minor_units(invoice, "amount_paid")
    else:
        amount_paid = amount_due if paid else 0  # pre-2018 payloads: `paid` without amount_paid
    status = invoice.get("status")
    if not isinstance(status, str) or not status:
        status = "paid" if paid else "open"
    reason = invoice.get("billing_reason")
    record = InvoiceRecord(
        invoice_key=f"stripe:invoice:{invoice['id']}",
        invoice_id=str(invoice["id"]),
        subscription_key=subscription_key(subscription_id),
        source=Source.STRIPE,
        entity=ctx.entity,
        livemode=ctx.livemode,
        customer_id=object_id(invoice.get("customer")),
        status=status,
        payment_failed=ctx.event_type == "invoice.payment_failed",
        billing_reason=reason if isinstance(reason, str) else None,
        amount_due=amount_due,
        amount_paid=amount_paid,
        currency=currency,
        period_start=_time(invoice.get("period_start")),
        period_end=_time(invoice.get("period_end")),
        occurred_at=from_unix(ctx.created),
        version=ctx.version,
        source_event_id=ctx.event_id,
        source_event_type=ctx.event_type,
    )
    return BillingDerivation(invoices=[record])


def invoice_payment_paid(ctx: EventContext, payment: dict[str, Any]) -> BillingDerivation:
    """A 2025-era invoice_payment: which invoice it pays, how much, through which PaymentIntent/Charge."""
    invoice_id = object_id(payment.get("invoice"))
    if invoice_id is None:
        raise DerivationError("invoice_payment.invoice is missing")
    status = payment.get("status")
    if not isinstance(status, str) or not status:
        raise DerivationError("invoice_payment.status is missing")
    currency = currency_code(payment)
    amount_paid = minor_units(payment, "amount_paid") if payment.get("amount_paid") is not None else 0
    if status == "paid" and payment.get("amount_paid") is None:
        raise DerivationError("invoice_payment is paid but amount_paid is missing")
    via = payment.get("payment") if isinstance(payment.get("payment"), dict) else {}
    assert isinstance(via, dict)
    record = InvoicePaymentRecord(
        invoice_payment_key=f"stripe:invoice_payment:{payment['id']}",
        invoice_payment_id=str(payment["id"]),
        invoice_id=invoice_id,
        source=Source.STRIPE,
        entity=ctx.entity,
        livemode=ctx.livemode,
        status=status,
        amount_paid=amount_paid,
        currency=currency,
        payment_intent=object_id(via.get("payment_intent")),
        charge=object_id(via.get("charge")),
        occurred_at=from_unix(ctx.created),
        version=ctx.version,
        source_event_id=ctx.event_id,
        source_event_type=ctx.event_type,
    )
    return BillingDerivation(invoice_payments=[record])


HANDLERS: dict[str, Handler] = {
    "customer.subscription.created": subscription_event,
    "customer.subscription.updated": subscription_event,
    "customer.subscription.deleted": subscription_event,
    "customer.subscription.paused": subscription_event,
    "customer.subscription.resumed": subscription_event,
    "customer.subscription.trial_will_end": trial_will_end,
    "invoice.paid": invoice_event,
    "invoice.payment_succeeded": invoice_event,
    "invoice.payment_failed": invoice_event,
    "invoice_payment.paid": invoice_payment_paid,
}
"""Billing event types derived into subscription state; everything else is left to other handlers."""


def _created_seconds(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def derive_billing_event(event: dict[str, Any], entity: str) -> BillingDerivation:
    """Subscription snapshots and invoice records of one parsed, verified Stripe event."""
    handler = HANDLERS.get(str(event.get("type")))
    if handler is None:
        return NOTHING
    created = _created_seconds(event.get("created"))
    if created is None:
        raise DerivationError("event.created is not a unix timestamp")
    ctx = EventContext(
        event_id=str(event["id"]),
        event_type=str(event["type"]),
        entity=entity,
        livemode=event.get("livemode") is True,
        created=created,
    )
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise DerivationError(f"{ctx.event_type} has no data.object")
    if (
        handler is not subscription_event
        and handler is not trial_will_end
        and not isinstance(obj.get("id"), str)
    ):
        raise DerivationError(f"{ctx.event_type} has no data.object with an id")
    return handler(ctx, obj)
