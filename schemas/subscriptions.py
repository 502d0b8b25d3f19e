"""Subscription records and the one rule that turns a subscription's history into MRR movements.

Processors publish a `SubscriptionSnapshot` for every subscription event: the subscription as that
event shows it, with its MRR already computed (a pure function of the payload). Snapshots are
immutable and keyed by subscription + event, so duplicates collapse and nothing is overwritten.

The current state and the dated MRR movements of a subscription are then a pure function of the
SET of its snapshots (`replay_subscription`): sorted by (version, source_event_id), which is event
time, a deterministic tie-break, and the event id for the (rare) tie-break collisions. Any delivery
order of the same events, with any duplicates, therefore yields the same state and movements. The
PostgreSQL sink runs this function; ClickHouse runs the same rule in SQL (view `mrr_movements`).

Movement rule, per subscription, walking its snapshots in order with the MRR before the first one
taken as 0:
- 0 -> positive: `new` the first time the subscription has MRR, `reactivation` after that;
- positive -> 0: `churn` (amount = minus the MRR lost);
- positive -> larger / smaller: `expansion` / `contraction` (amount = the signed difference);
- unchanged MRR: no movement.
A subscription cannot change currency in Stripe; should a payload claim it anyway, the old
currency's MRR churns and the new currency's starts (new or reactivation) at the same instant.
"""

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.envelope import Source

# The same money types as schemas.revenue (which imports this module for DerivedEvent).
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
MinorUnits = Annotated[int, Field(ge=0, le=2**62)]


class MovementKind(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


class SubscriptionItemSnapshot(BaseModel):
    """One subscription item as priced for MRR (kept for inspection; MRR is already summed)."""

    model_config = ConfigDict(frozen=True)

    item_id: str | None
    price_id: str | None
    quantity: int = Field(ge=0, description="Quantity the item is billed for (after transform_quantity).")
    unit_amount: str | None = Field(description="Unit amount in minor units, as an exact decimal string.")
    interval: str | None
    interval_count: int
    usage_type: str
    counted: bool = Field(description="False for metered items and items without a licensed price.")


class DiscountSnapshot(BaseModel):
    """A discount on the subscription; only duration=forever ones reduce MRR."""

    model_config = ConfigDict(frozen=True)

    coupon_id: str | None
    duration: str | None
    percent_off: str | None = Field(description="Exact decimal string, e.g. '12.5'.")
    amount_off: int | None = Field(description="Minor units off every invoice (in the coupon's currency).")
    currency: str | None


class SubscriptionSnapshot(BaseModel):
    """A subscription as one event shows it. Immutable: identified by subscription + event."""

    model_config = ConfigDict(frozen=True)

    snapshot_id: str = Field(description="Deterministic: <subscription_key>@<version>:<source_event_id>.")
    subscription_key: str = Field(description="e.g. stripe:subscription:sub_123.")
    subscription_id: str = Field(
        description="Provider id; `legacy:<customer>` for pre-2014 payloads whose subscription had no id."
    )
    source: Source
    entity: str = Field(description="Business entity the money belongs to.")
    livemode: bool
    customer_id: str | None
    status: str = Field(description="Provider status; `canceled` for customer.subscription.deleted.")
    currency: Currency
    mrr_minor: MinorUnits = Field(description="Monthly recurring revenue of this state (README: MRR).")
    items: list[SubscriptionItemSnapshot] = Field(default_factory=list)
    discounts: list[DiscountSnapshot] = Field(default_factory=list)
    cancel_at_period_end: bool = False
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    trial_end: datetime | None = None
    occurred_at: datetime = Field(description="Event time (the provider's `created`), UTC.")
    version: int = Field(ge=0, description="Forward-only order: event time, then a deterministic tie-break.")
    source_event_id: str
    source_event_type: str

    @property
    def order_key(self) -> tuple[int, str]:
        return (self.version, self.source_event_id)


class MrrMovement(BaseModel):
    """A dated change of one subscription's MRR. Recomputed (never accumulated) from the snapshots."""

    model_config = ConfigDict(frozen=True)

    movement_id: str = Field(description="<snapshot_id>:<kind>:<currency>, deterministic.")
    subscription_key: str
    customer_id: str | None
    source: Source
    entity: str
    livemode: bool
    currency: Currency
    kind: MovementKind
    amount_minor: int = Field(description="Signed change of MRR in minor units (negative for churn).")
    mrr_before: MinorUnits
    mrr_after: MinorUnits
    occurred_at: datetime
    version: int = Field(ge=0)
    source_event_id: str


class SubscriptionState(BaseModel):
    """The current state of one subscription: its newest snapshot plus what its history implies."""

    model_config = ConfigDict(frozen=True)

    subscription_key: str
    subscription_id: str
    source: Source
    entity: str
    livemode: bool
    customer_id: str | None
    status: str
    currency: Currency
    mrr_minor: MinorUnits
    arr_minor: MinorUnits = Field(description="12 x mrr_minor.")
    cancel_at_period_end: bool
    current_period_start: datetime | None
    current_period_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    first_seen_at: datetime = Field(description="Event time of the oldest snapshot.")
    first_active_at: datetime | None = Field(description="Event time the subscription first had MRR.")
    churned_at: datetime | None = Field(description="Event time of the last churn, if it has no MRR now.")
    snapshot_count: int
    version: int
    source_event_id: str = Field(description="Event of the newest snapshot.")


class InvoiceRecord(BaseModel):
    """An invoice that belongs to a subscription, in the state one event shows (forward-only upsert)."""

    model_config = ConfigDict(frozen=True)

    invoice_key: str = Field(description="stripe:invoice:<in_...>.")
    invoice_id: str
    subscription_key: str
    source: Source
    entity: str
    livemode: bool
    customer_id: str | None
    status: str = Field(description="draft / open / paid / uncollectible / void (pre-2018: from `paid`).")
    payment_failed: bool = Field(description="True when this version comes from invoice.payment_failed.")
    billing_reason: str | None
    amount_due: MinorUnits
    amount_paid: MinorUnits
    currency: Currency
    period_start: datetime | None
    period_end: datetime | None
    occurred_at: datetime
    version: int = Field(ge=0)
    source_event_id: str
    source_event_type: str


class InvoicePaymentRecord(BaseModel):
    """A 2025-era invoice_payment (one payment towards an invoice), forward-only upsert by id."""

    model_config = ConfigDict(frozen=True)

    invoice_payment_key: str = Field(description="stripe:invoice_payment:<inpay_...>.")
    invoice_payment_id: str
    invoice_id: str
    source: Source
    entity: str
    livemode: bool
    status: str
    amount_paid: MinorUnits
    currency: Currency
    payment_intent: str | None
    charge: str | None
    occurred_at: datetime
    version: int = Field(ge=0)
    source_event_id: str
    source_event_type: str


def _movement(
    snapshot: SubscriptionSnapshot, kind: MovementKind, currency: str, before: int, after: int
) -> MrrMovement:
    return MrrMovement(
        movement_id=f"{snapshot.snapshot_id}:{kind.value}:{currency}",
        subscription_key=snapshot.subscription_key,
        customer_id=snapshot.customer_id,
        source=snapshot.source,
        entity=snapshot.entity,
        livemode=snapshot.livemode,
        currency=currency,
        kind=kind,
        amount_minor=after - before,
        mrr_before=before,
        mrr_after=after,
        occurred_at=snapshot.occurred_at,
        version=snapshot.version,
        source_event_id=snapshot.source_event_id,
    )


def _kind(before: int, after: int, had_mrr: bool) -> MovementKind:
    if before == 0:
        return MovementKind.REACTIVATION if had_mrr else MovementKind.NEW
    if after == 0:
        return MovementKind.CHURN
    return MovementKind.EXPANSION if after > before else MovementKind.CONTRACTION


def replay_subscription(
    snapshots: Iterable[SubscriptionSnapshot],
) -> tuple[SubscriptionState, list[MrrMovement]]:
    """The current state and the MRR movements of ONE subscription from the set of its snapshots.

    Order-free and duplicate-free by construction: snapshots are deduplicated by id and sorted by
    (version, source_event_id) before anything is computed. Raises ValueError for no snapshots or
    snapshots of several subscriptions.
    """
    unique = {s.snapshot_id: s for s in snapshots}
    ordered = sorted(unique.values(), key=lambda s: s.order_key)
    if not ordered:
        raise ValueError("replay_subscription needs at least one snapshot")
    if len({s.subscription_key for s in ordered}) != 1:
        raise ValueError("replay_subscription got snapshots of several subscriptions")

    movements: list[MrrMovement] = []
    mrr, currency = 0, ordered[0].currency
    had_mrr = False
    first_active_at: datetime | None = None
    for snapshot in ordered:
        if snapshot.currency != currency and mrr > 0:
            movements.append(_movement(snapshot, MovementKind.CHURN, currency, mrr, 0))
            mrr = 0
        if snapshot.mrr_minor != mrr:
            kind = _kind(mrr, snapshot.mrr_minor, had_mrr)
            movements.append(_movement(snapshot, kind, snapshot.currency, mrr, snapshot.mrr_minor))
        if snapshot.mrr_minor > 0:
            had_mrr = True
            first_active_at = first_active_at or snapshot.occurred_at
        mrr, currency = snapshot.mrr_minor, snapshot.currency

    last = ordered[-1]
    churns = [m for m in movements if m.kind is MovementKind.CHURN]
    churned_at = churns[-1].occurred_at if last.mrr_minor == 0 and churns else None
    state = SubscriptionState(
        subscription_key=last.subscription_key,
        subscription_id=last.subscription_id,
        source=last.source,
        entity=last.entity,
        livemode=last.livemode,
        customer_id=last.customer_id,
        status=last.status,
        currency=last.currency,
        mrr_minor=last.mrr_minor,
        arr_minor=12 * last.mrr_minor,
        cancel_at_period_end=last.cancel_at_period_end,
        current_period_start=last.current_period_start,
        current_period_end=last.current_period_end,
        canceled_at=last.canceled_at,
        ended_at=last.ended_at,
        first_seen_at=ordered[0].occurred_at,
        first_active_at=first_active_at,
        churned_at=churned_at,
        snapshot_count=len(ordered),
        version=last.version,
        source_event_id=last.source_event_id,
    )
    return state, movements
