"""What the detectors count, taken from derived events, and how it changes the hourly buckets.

Everything here is pure. The durable dedupe (a record id counted once, whatever the number of
deliveries) is `apply_versions`: given what the store already holds for those ids, it says which
observations are new or newer and the exact change to each bucket, so a replay changes nothing.
"""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from schemas.revenue import DerivedEvent

HOUR = timedelta(hours=1)

# Provider event types counted as a dispute / a failed payment attempt. Counted from the event
# record itself (every derived event carries one), so they work whether or not a record is derived.
# Only charge.failed counts failures: Stripe also sends payment_intent.payment_failed and
# invoice.payment_failed for the same attempt, and counting those too would double it.
DISPUTE_EVENT_TYPES = frozenset({"charge.dispute.created", "dispute"})
FAILED_PAYMENT_EVENT_TYPES = frozenset({"charge.failed"})

PAYMENT, REFUND, DISPUTE, FAILED = "payment", "refund", "dispute", "failed_payment"
EVENT_CURRENCY = ""  # buckets of provider events that carry no money


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Observation:
    """One countable thing: a payment or refund record (by ledger id) or a dispute / failure event."""

    record_id: str
    version: int
    kind: str
    entity: str
    currency: str
    livemode: bool
    occurred_at: datetime
    amount_minor: int
    counted: bool
    customer_id: str | None = None

    @property
    def hour(self) -> datetime:
        return floor_hour(self.occurred_at)

    @property
    def bucket(self) -> "BucketKey":
        return BucketKey(self.entity, self.currency, self.livemode, self.hour)


@dataclass(frozen=True, order=True)
class BucketKey:
    entity: str
    currency: str
    livemode: bool
    hour: datetime

    @property
    def series(self) -> tuple[str, str, bool]:
        return (self.entity, self.currency, self.livemode)


@dataclass(frozen=True)
class Counts:
    """One hour of one (entity, currency, livemode): counts and minor-unit sums."""

    payments: int = 0
    payments_minor: int = 0
    refunds: int = 0
    refunds_minor: int = 0
    disputes: int = 0
    failed: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)))

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Counts)))

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(Counts))


ZERO = Counts()


def contribution(obs: Observation) -> Counts:
    """What one observation adds to its bucket (nothing when it moves no money)."""
    if not obs.counted:
        return ZERO
    if obs.kind == PAYMENT:
        return Counts(payments=1, payments_minor=obs.amount_minor)
    if obs.kind == REFUND:
        return Counts(refunds=1, refunds_minor=obs.amount_minor)
    if obs.kind == DISPUTE:
        return Counts(disputes=1)
    if obs.kind == FAILED:
        return Counts(failed=1)
    return ZERO


def observations(derived: DerivedEvent) -> list[Observation]:
    """The countable things in one derived event."""
    found = [
        Observation(
            record_id=r.record_id,
            version=r.version,
            kind=r.kind.value,
            entity=r.entity,
            currency=r.currency,
            livemode=r.livemode,
            occurred_at=r.occurred_at,
            amount_minor=r.amount_minor,
            counted=r.counted,
            customer_id=r.customer_id,
        )
        for r in derived.revenue
        if r.kind.value in (PAYMENT, REFUND)
    ]
    event = derived.event
    kind = (
        DISPUTE
        if event.event_type in DISPUTE_EVENT_TYPES
        else FAILED
        if event.event_type in FAILED_PAYMENT_EVENT_TYPES
        else None
    )
    if kind is not None:
        found.append(
            Observation(
                record_id=f"event:{event.source.value}:{event.provider_event_id}",
                version=0,
                kind=kind,
                entity=event.entity,
                currency=EVENT_CURRENCY,
                livemode=event.livemode,
                occurred_at=event.event_created_at or event.received_at,
                amount_minor=0,
                counted=True,
            )
        )
    return found


def apply_versions(
    existing: dict[str, Observation], incoming: list[Observation]
) -> tuple[list[Observation], dict[BucketKey, Counts]]:
    """Which incoming observations change the state, and the exact bucket deltas.

    Forward-only: an observation replaces the stored one only with a higher version, so any
    order or repetition of deliveries ends in the same buckets. Returns (changed, deltas).
    """
    newest: dict[str, Observation] = {}
    for obs in incoming:
        held = newest.get(obs.record_id) or existing.get(obs.record_id)
        if held is None or obs.version > held.version:
            newest[obs.record_id] = obs
    deltas: dict[BucketKey, Counts] = {}
    for record_id, obs in newest.items():
        old = existing.get(record_id)
        if old is not None:
            deltas[old.bucket] = deltas.get(old.bucket, ZERO) - contribution(old)
        deltas[obs.bucket] = deltas.get(obs.bucket, ZERO) + contribution(obs)
    return list(newest.values()), {k: v for k, v in deltas.items() if v}
