"""A generated revenue history for the anomaly tests: several normal weeks of Stripe-like traffic
(daily and weekly seasonality, Poisson noise, ~3% refunds, ~5% failed attempts), then three
injected anomalies and one payment above a configured rule's threshold.

Built as the derived events the revenue processor publishes, so the same history feeds the pure
detectors (unit tests) and the anomaly service through Kafka (integration test).
"""

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from processors.revenue.common import event_version
from schemas.envelope import Source
from schemas.revenue import DerivedEvent, EventState, RevenueKind, RevenueRecord, WebhookEventRecord

START = datetime(2024, 4, 1, tzinfo=UTC)  # a Monday
WEEKS = 5
PRICES = (900, 1900, 2900, 4900, 9900)
ENTITY = "default"

DROP_START = START + timedelta(weeks=4, days=2, hours=15)  # week 5, Wednesday 15:00 UTC, 3 hours
DROP_HOURS = 3
REFUND_SPIKE = START + timedelta(weeks=4, days=4, hours=16)  # week 5, Friday 16:00 UTC
DUPLICATE_AT = START + timedelta(weeks=4, days=3, hours=14, minutes=3)  # week 5, Thursday
BIG_PAYMENT_AT = START + timedelta(weeks=4, days=1, hours=11, minutes=30)  # week 5, Tuesday
BIG_AMOUNT = 2_500_000
RULES_JSON = (
    '[{"name": "big-payment", "type": "payment_above", "currency": "usd", "amount_minor": 1000000},'
    ' {"name": "slow-day", "type": "daily_revenue_below", "currency": "usd", "amount_minor": 10000}]'
)


def hourly_rate(hour: datetime) -> float:
    """Expected payments per hour: a daytime peak (UTC afternoon) and quieter weekends."""
    daily = 4 + 14 * max(0.0, math.sin(math.pi * (hour.hour - 8) / 16)) if 8 <= hour.hour < 24 else 4
    return daily * (0.75 if hour.weekday() >= 5 else 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class History:
    events: list[DerivedEvent] = field(default_factory=list)
    end: datetime = START + timedelta(weeks=WEEKS)


def _event(event_id: str, event_type: str, at: datetime, records: list[RevenueRecord]) -> DerivedEvent:
    return DerivedEvent(
        event=WebhookEventRecord(
            source=Source.STRIPE,
            provider_event_id=event_id,
            event_type=event_type,
            entity=ENTITY,
            livemode=True,
            received_at=at,
            event_created_at=at,
            state=EventState.PROCESSED if records else EventState.IGNORED,
        ),
        revenue=records,
    )


def _record(
    kind: RevenueKind, rid: str, pkey: str, amount: int, at: datetime, customer: str, eid: str
) -> RevenueRecord:
    return RevenueRecord(
        record_id=f"stripe:{kind.value}:{rid}",
        kind=kind,
        source=Source.STRIPE,
        entity=ENTITY,
        payment_key=pkey,
        amount_minor=amount,
        currency="usd",
        livemode=True,
        counted=True,
        status="succeeded",
        customer_id=customer,
        occurred_at=at,
        version=event_version(int(at.timestamp()), eid),
        source_event_id=eid,
        source_event_type="payment_intent.succeeded" if kind is RevenueKind.PAYMENT else "charge.refunded",
    )


def payment(i: int | str, at: datetime, amount: int, customer: str | None = None) -> DerivedEvent:
    eid = f"evt_p{i}"
    rec = _record(RevenueKind.PAYMENT, f"pi_{i}", f"pi_{i}", amount, at, customer or f"cus_{i}", eid)
    return _event(eid, "payment_intent.succeeded", at, [rec])


def refund(i: int | str, at: datetime, amount: int) -> DerivedEvent:
    eid = f"evt_r{i}"
    return _event(
        eid,
        "charge.refunded",
        at,
        [_record(RevenueKind.REFUND, f"re_{i}", f"pi_{i}", amount, at, f"cus_{i}", eid)],
    )


def failure(i: int | str, at: datetime) -> DerivedEvent:
    return _event(f"evt_f{i}", "charge.failed", at, [])


def generate(seed: int = 7, inject: bool = True) -> History:
    """The history, in event-time order; `inject=False`: only the normal weeks."""
    rng = random.Random(seed)
    history = History()
    paid: list[tuple[int, datetime, int]] = []
    n = 0
    hour = START
    while hour < history.end:
        lam = hourly_rate(hour)
        in_drop = inject and DROP_START <= hour < DROP_START + timedelta(hours=DROP_HOURS)
        for _ in range(_poisson(rng, lam)):
            n += 1
            at = hour + timedelta(seconds=rng.randrange(3600))
            amount = rng.choice(PRICES)
            if in_drop and rng.random() > 0.05:
                continue  # the outage: 95% of payments never happen
            history.events.append(payment(n, at, amount))
            paid.append((n, at, amount))
            if rng.random() < 0.03:
                later = at + timedelta(hours=rng.uniform(2, 30))
                if later < history.end:
                    history.events.append(refund(n, later, amount))
        for f in range(_poisson(rng, lam * 0.05)):
            history.events.append(
                failure(f"{hour:%Y%m%d%H}_{f}", hour + timedelta(seconds=rng.randrange(3600)))
            )
        hour += timedelta(hours=1)
    if not inject:
        return history
    # A refund spike: 15 refunds of the day before's payments within one hour.
    day_before = [
        p for p in paid if REFUND_SPIKE - timedelta(days=1) <= p[1] < REFUND_SPIKE - timedelta(hours=2)
    ]
    for k, (i, _at, amount) in enumerate(day_before[:15]):
        history.events.append(refund(f"{i}_spike", REFUND_SPIKE + timedelta(minutes=3 * k + 1), amount))
    # A duplicate-looking charge: the same customer pays the same amount twice, 2 minutes apart.
    history.events.append(payment("dup_a", DUPLICATE_AT, 4900, customer="cus_double"))
    history.events.append(payment("dup_b", DUPLICATE_AT + timedelta(minutes=2), 4900, customer="cus_double"))
    # One payment above the configured rule's threshold.
    history.events.append(payment("big", BIG_PAYMENT_AT, BIG_AMOUNT))
    history.events.sort(key=lambda d: d.event.event_created_at or d.event.received_at)
    return history


EXPECTED_RULES = {
    ("revenue_drop", DROP_START),
    ("refund_rate_spike", REFUND_SPIKE),
    ("duplicate_charge", DUPLICATE_AT),
    ("rule:big-payment", BIG_PAYMENT_AT),
}
