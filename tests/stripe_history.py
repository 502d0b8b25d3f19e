"""Generated Stripe-shaped event histories for the crash and audit tests, with the expected
outcome computed independently of the pipeline (plain sums over what was generated).

Events are real published payloads (tests/fixtures, see SOURCES.md) with ids, amounts, currencies
and times replaced: payment_intent.succeeded for every payment, checkout.session.completed (with a
customer, so it makes an order) for some, and charge.refunded for some, listing one or two refunds
(the second event of a twice-refunded charge lists both, as Stripe does). Every generated record
keeps the same money in every event that mentions it, so each ledger row changes money at most once
(when it is created).
"""

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.envelope import RawEnvelope, Source
from tests.stripe_fixtures import fixture_event

BASE_CREATED = 1_700_000_000
CURRENCIES = ("usd", "eur", "jpy")
# The smaller published payloads of each type, so tens of thousands of them stay quick to process.
PAYMENT_TEMPLATE = "stripe-sync-engine/payment_intent.succeeded__1.json"
REFUND_TEMPLATE = "stripe-sync-engine/charge.refunded__1.json"
CHECKOUT_TEMPLATE = "stripe-ruby-mock/checkout.session.completed__1.json"


@dataclass
class Expected:
    """What the pipeline must end with, computed from the generated history alone."""

    # livemode -> currency -> {"gross", "refunds", "net"}
    totals: dict[bool, dict[str, dict[str, int]]] = field(default_factory=dict)
    payments: int = 0
    refunds: int = 0
    order_status: dict[str, str] = field(default_factory=dict)  # order_id -> status

    def add(self, livemode: bool, currency: str, gross: int = 0, refunds: int = 0) -> None:
        sums = self.totals.setdefault(livemode, {}).setdefault(currency, {"gross": 0, "refunds": 0, "net": 0})
        sums["gross"] += gross
        sums["refunds"] += refunds
        sums["net"] += gross - refunds


@dataclass
class History:
    events: list[bytes]
    expected: Expected


class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Kept as text: parsing a fresh copy is much faster than deep-copying a parsed one.
        self.payment = json.dumps(fixture_event(PAYMENT_TEMPLATE))
        self.refund = json.dumps(fixture_event(REFUND_TEMPLATE))
        self.checkout = json.dumps(fixture_event(CHECKOUT_TEMPLATE))

    def payment_event(
        self, i: int, amount: int, currency: str, livemode: bool, created: int
    ) -> dict[str, Any]:
        event = json.loads(self.payment)
        event.update(id=f"evt_gen_p{i}", created=created, livemode=livemode)
        intent = event["data"]["object"]
        intent.update(
            id=f"pi_gen_{i}",
            amount=amount,
            amount_received=amount,
            currency=currency,
            status="succeeded",
            livemode=livemode,
        )
        for charge in intent.get("charges", {}).get("data", []):
            charge.update(
                id=f"ch_gen_{i}",
                amount=amount,
                amount_captured=amount,
                currency=currency,
                payment_intent=f"pi_gen_{i}",
            )
        return event

    def checkout_event(
        self, i: int, amount: int, currency: str, livemode: bool, created: int, customer: str
    ) -> dict[str, Any]:
        event = json.loads(self.checkout)
        event.update(id=f"evt_gen_c{i}", created=created, livemode=livemode)
        session = event["data"]["object"]
        session.update(
            id=f"cs_gen_{i}",
            mode="payment",
            payment_status="paid",
            payment_intent=f"pi_gen_{i}",
            customer=customer,
            amount_total=amount,
            amount_subtotal=amount,
            currency=currency,
            livemode=livemode,
        )
        return event

    def refund_event(
        self,
        event_id: str,
        i: int,
        paid: int,
        refunds: list[tuple[str, int, int]],
        currency: str,
        livemode: bool,
        created: int,
    ) -> dict[str, Any]:
        """charge.refunded listing `refunds` (id, amount, created); amount_refunded is their sum,
        so no `:unlisted` remainder is derived."""
        event = json.loads(self.refund)
        event.update(id=event_id, created=created, livemode=livemode)
        charge = event["data"]["object"]
        refunded = sum(amount for _, amount, _ in refunds)
        (template,) = charge["refunds"]["data"]
        listed = []
        for refund_id, amount, refund_created in refunds:
            refund = dict(template)
            refund.update(
                id=refund_id,
                amount=amount,
                charge=f"ch_gen_{i}",
                payment_intent=f"pi_gen_{i}",
                currency=currency,
                status="succeeded",
                created=refund_created,
            )
            listed.append(refund)
        charge.update(
            id=f"ch_gen_{i}",
            amount=paid,
            amount_captured=paid,
            amount_refunded=refunded,
            refunded=refunded == paid,
            currency=currency,
            payment_intent=f"pi_gen_{i}",
            livemode=livemode,
        )
        charge["refunds"].update(data=listed, total_count=len(listed), has_more=False)
        return event


def generate_history(
    rng: random.Random,
    min_events: int,
    checkout_share: float = 0.3,
    refund_share: float = 0.2,
    second_refund_share: float = 0.25,
    test_mode_share: float = 0.1,
    customers: int = 500,
) -> History:
    """Payments until at least `min_events` distinct events exist; see the module docstring."""
    gen = Generator(rng)
    expected = Expected()
    events: list[bytes] = []
    i = 0
    while len(events) < min_events:
        amount = rng.randint(100, 100_000)
        currency = rng.choice(CURRENCIES)
        livemode = rng.random() >= test_mode_share
        created = BASE_CREATED + i
        events.append(json.dumps(gen.payment_event(i, amount, currency, livemode, created)).encode())
        expected.payments += 1
        refunded = 0
        if rng.random() < refund_share:
            first = amount if rng.random() < 0.3 else rng.randint(1, amount)
            refund_created = created + rng.randint(60, 7200)
            refunds = [(f"re_gen_{i}_a", first, refund_created)]
            events.append(
                json.dumps(
                    gen.refund_event(
                        f"evt_gen_r{i}_a", i, amount, refunds, currency, livemode, refund_created
                    )
                ).encode()
            )
            refunded = first
            if first < amount and rng.random() < second_refund_share:
                second = rng.randint(1, amount - first)
                later = refund_created + rng.randint(1, 3600)
                refunds = refunds + [(f"re_gen_{i}_b", second, later)]
                events.append(
                    json.dumps(
                        gen.refund_event(f"evt_gen_r{i}_b", i, amount, refunds, currency, livemode, later)
                    ).encode()
                )
                refunded += second
            expected.refunds += len(refunds)
        expected.add(livemode, currency, gross=amount, refunds=refunded)
        if rng.random() < checkout_share:
            customer = f"cus_gen_{rng.randrange(customers)}"
            events.append(
                json.dumps(gen.checkout_event(i, amount, currency, livemode, created, customer)).encode()
            )
            status = "paid" if refunded == 0 else "refunded" if refunded == amount else "partially_refunded"
            expected.order_status[f"stripe:order:cs_gen_{i}"] = status
        i += 1
    return History(events=events, expected=expected)


def raw_envelope(body: bytes, entity: str = "default") -> tuple[bytes, bytes]:
    """(key, value) for the raw topic: the envelope ingest would publish for this verified event,
    keyed like ingest does (the event's object id)."""
    event = json.loads(body)
    envelope = RawEnvelope(
        source=Source.STRIPE,
        endpoint="default",
        entity=entity,
        provider_event_id=event["id"],
        event_type=event["type"],
        livemode=event["livemode"] is True,
        received_at=datetime.now(UTC),
        content_type="application/json",
        body=body,
    )
    return event["data"]["object"]["id"].encode(), envelope.to_bytes()
