"""Gumroad pings -> revenue records (pure), one handler per resource family.

Money: `price` is taken as USD cents, and the record's currency is "usd" whatever `currency` says.
Gumroad's docs disagree: the Ping page says "price: the price paid, in USD cents", while the
payload also carries `currency` and the refund API counts `amount_cents` in the sale's listing
currency. Gumroad's own source settles it for pings: the ping sends `price: price_cents`, and a
purchase's `price_cents` is its canonical USD value (presentment prices are converted with
`get_usd_cents`), while `currency` is the product's listing currency (`link.price_currency_type`).
So the amount is kept exactly as sent (never converted or rounded) and labelled USD; the sent
`currency` stays readable in the raw envelope's bytes. For USD products both readings agree.

Records (deterministic ids, one purchase counts once however often Gumroad pings):
- sale -> payment `gumroad:payment:<sale_id>` (payment_key `gumroad:<sale_id>`), plus an order
  `gumroad:order:<sale_id>` unless it is a subscription renewal (`is_recurring_charge`). A gift's
  ping is the giftee's $0 purchase: its `gift_price` is the money. Pre-order authorisations
  (`is_preorder_authorization`) are not revenue yet: ignored with that reason.
- refund -> refund `gumroad:refund:<sale_id>` holding the CUMULATIVE refunded amount:
  `amount_refunded_in_cents` when the ping has it (partial or full), else the whole price when
  `refunded` is true. `partially_refunded` without an amount cannot be derived (failed, with the
  reason). Its version is that amount: Gumroad sends no refund time, and a sale's refunded total
  only grows, so the largest one wins in any delivery order (forward-only).
- dispute, dispute_won -> recorded as ignored with the reason: the ledger has no dispute kind yet.
- cancellation, subscription_* -> recorded as ignored: lifecycle changes that move no money.
Event time: Gumroad dates only the sale (`sale_timestamp`), so every record of a sale carries
that time; payments and orders are versioned by it (processors.revenue.common.event_version).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from processors.revenue.common import DerivationError, event_version
from schemas.envelope import RawEnvelope, Source
from schemas.gumroad import REFUND, SALE, SALE_RESOURCES, Ping, cents, flag, identify, parse_ping, text
from schemas.revenue import (
    DerivedEvent,
    EventState,
    OrderRecord,
    RevenueKind,
    RevenueRecord,
    WebhookEventRecord,
)

CURRENCY = "usd"  # see the module docstring: ping prices are USD cents


@dataclass(frozen=True)
class Outcome:
    """What one ping implies: records, or the reason it implies none."""

    revenue: list[RevenueRecord]
    orders: list[OrderRecord]
    created_at: datetime | None
    note: str | None = None  # why nothing was derived (recorded on the ignored event)


@dataclass(frozen=True)
class Sale:
    """The purchase facts every sale-type resource carries."""

    sale_id: str
    amount: int
    occurred_at: datetime
    customer: str | None
    livemode: bool
    entity: str
    event_id: str
    resource: str
    product: str | None = None


def _timestamp(ping: Ping, field: str) -> datetime | None:
    value = text(ping, field)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sale(ping: Ping, envelope: RawEnvelope, resource: str) -> Sale:
    sale_id = text(ping, "sale_id")
    if sale_id is None:
        raise DerivationError("sale_id is missing")
    occurred_at = _timestamp(ping, "sale_timestamp")
    if occurred_at is None or occurred_at.timestamp() < 0:
        raise DerivationError("sale_timestamp is not an ISO-8601 time")
    amount = cents(ping, "price")
    if flag(ping, "is_gift_receiver_purchase") and cents(ping, "gift_price") is not None:
        amount = cents(ping, "gift_price")
    if amount is None:
        raise DerivationError("price is missing")
    return Sale(
        sale_id=sale_id,
        amount=amount,
        occurred_at=occurred_at.astimezone(UTC),
        customer=text(ping, "purchaser_id"),
        livemode=envelope.livemode,
        entity=envelope.entity,
        event_id=envelope.provider_event_id,
        resource=resource,
        product=text(ping, "product_id") or text(ping, "product_permalink"),
    )


def _record(sale: Sale, kind: RevenueKind, amount: int, version: int) -> RevenueRecord:
    return RevenueRecord(
        record_id=f"gumroad:{kind.value}:{sale.sale_id}",
        kind=kind,
        source=Source.GUMROAD,
        entity=sale.entity,
        payment_key=f"gumroad:{sale.sale_id}",
        amount_minor=amount,
        currency=CURRENCY,
        livemode=sale.livemode,
        counted=True,
        status="succeeded",
        customer_id=sale.customer,
        occurred_at=sale.occurred_at,
        version=version,
        source_event_id=sale.event_id,
        source_event_type=sale.resource,
        product=sale.product,
    )


def on_sale(ping: Ping, sale: Sale) -> Outcome:
    if flag(ping, "is_preorder_authorization"):
        return Outcome(
            [], [], sale.occurred_at, "a pre-order authorisation is not revenue until it is charged"
        )
    version = event_version(int(sale.occurred_at.timestamp()), sale.sale_id)
    payment = _record(sale, RevenueKind.PAYMENT, sale.amount, version)
    orders = []
    if not flag(ping, "is_recurring_charge"):
        orders.append(
            OrderRecord(
                order_id=f"gumroad:order:{sale.sale_id}",
                source=Source.GUMROAD,
                entity=sale.entity,
                payment_key=payment.payment_key,
                customer_id=sale.customer,
                amount_minor=sale.amount,
                currency=CURRENCY,
                livemode=sale.livemode,
                occurred_at=sale.occurred_at,
                version=version,
                source_event_id=sale.event_id,
            )
        )
    return Outcome([payment], orders, sale.occurred_at)


def on_refund(ping: Ping, sale: Sale) -> Outcome:
    refunded = cents(ping, "amount_refunded_in_cents")
    if refunded is None and flag(ping, "refunded"):
        refunded = sale.amount
    if refunded is None:
        if flag(ping, "partially_refunded"):
            raise DerivationError("partially refunded, but the ping has no amount_refunded_in_cents")
        return Outcome([], [], sale.occurred_at, "refund ping for a sale Gumroad does not mark refunded")
    if refunded > sale.amount:
        raise DerivationError(f"refunded {refunded} exceeds the sale's {sale.amount}")
    if refunded == 0:
        return Outcome([], [], sale.occurred_at, "refund ping with nothing refunded")
    return Outcome([_record(sale, RevenueKind.REFUND, refunded, version=refunded)], [], sale.occurred_at)


def on_dispute(ping: Ping, sale: Sale) -> Outcome:
    return Outcome(
        [],
        [],
        sale.occurred_at,
        f"{sale.resource}: dispute effects are not derived yet (the ledger has no dispute kind)",
    )


HANDLERS: dict[str, Callable[[Ping, Sale], Outcome]] = {
    SALE: on_sale,
    REFUND: on_refund,
    "dispute": on_dispute,
    "dispute_won": on_dispute,
}


def derive_ping(envelope: RawEnvelope) -> Outcome:
    """Records for one verified Gumroad ping; raises DerivationError / ValueError when it cannot."""
    kind = envelope.content_type.split(";")[0].strip().lower()
    ping = parse_ping(envelope.body, kind)
    resource = identify(ping).resource
    if resource not in SALE_RESOURCES:
        stamp = next(
            (
                t
                for f in ("cancelled_at", "ended_at", "effective_as_of", "created_at")
                if (t := _timestamp(ping, f))
            ),
            None,
        )
        return Outcome([], [], stamp, f"{resource}: a subscription lifecycle change, no money moved")
    return HANDLERS[resource](ping, _sale(ping, envelope, resource))


def derive_gumroad(envelope: RawEnvelope) -> DerivedEvent:
    """derive() for source gumroad: never raises for bad content (FAILED with the reason)."""
    try:
        outcome = derive_ping(envelope)
        state = EventState.PROCESSED if outcome.revenue or outcome.orders else EventState.IGNORED
        error = outcome.note if state is EventState.IGNORED else None
    except (DerivationError, ValueError, KeyError, TypeError) as exc:  # PingError is a ValueError
        outcome = Outcome([], [], None)
        state, error = EventState.FAILED, f"{type(exc).__name__}: {exc}"[:500]
    record = WebhookEventRecord(
        source=envelope.source,
        provider_event_id=envelope.provider_event_id,
        event_type=envelope.event_type,
        entity=envelope.entity,
        livemode=envelope.livemode,
        received_at=envelope.received_at,
        event_created_at=outcome.created_at,
        state=state,
        error=error,
    )
    return DerivedEvent(event=record, revenue=outcome.revenue, orders=outcome.orders)
