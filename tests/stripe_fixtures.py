"""Loading published Stripe payloads (tests/fixtures, see SOURCES.md) and signing them the way
Stripe does. The signer (revstream.send) implements Stripe's documented scheme with hmac; ingest
verifies with the stripe library, so the two sides are independent implementations."""

import json
from pathlib import Path
from typing import Any

from revstream.send import stripe_signature_header

FIXTURES = Path(__file__).parent / "fixtures"
STRIPE = FIXTURES / "stripe"


def fixture_bytes(relative: str) -> bytes:
    return (STRIPE / relative).read_bytes()


def fixture_event(relative: str, **overrides: Any) -> dict[str, Any]:
    event = json.loads(fixture_bytes(relative))
    event.update(overrides)
    return event


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    return stripe_signature_header(body, secret, timestamp)


def payment_succeeded(
    key: str, amount: int, currency: str, *, livemode: bool = True, created: int = 1_790_000_000
) -> dict[str, Any]:
    """A published payment_intent.succeeded event re-targeted to pi_<key> / ch_<key> and `amount`."""
    event = fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json")
    event.update(id=f"evt_{key}_paid", created=created, livemode=livemode)
    intent = event["data"]["object"]
    intent.update(id=f"pi_{key}", amount=amount, amount_received=amount, currency=currency, livemode=livemode)
    intent["status"] = "succeeded"
    for charge in intent.get("charges", {}).get("data", []):
        charge.update(
            id=f"ch_{key}",
            amount=amount,
            amount_captured=amount,
            currency=currency,
            payment_intent=f"pi_{key}",
        )
    return event


def charge_refunded(
    key: str, paid: int, refunded: int, currency: str, *, livemode: bool = True, created: int = 1_790_000_100
) -> dict[str, Any]:
    """A published charge.refunded event for ch_<key> with one listed refund re_<key> of `refunded`."""
    event = fixture_event("stripe-ruby-mock/charge.refunded__1.json")
    event.update(id=f"evt_{key}_refunded", created=created, livemode=livemode)
    charge = event["data"]["object"]
    charge.update(
        id=f"ch_{key}",
        amount=paid,
        amount_captured=paid,
        amount_refunded=refunded,
        refunded=refunded == paid,
        currency=currency,
        payment_intent=f"pi_{key}",
        livemode=livemode,
    )
    (refund,) = charge["refunds"]["data"]
    refund.update(
        id=f"re_{key}",
        amount=refunded,
        charge=f"ch_{key}",
        payment_intent=f"pi_{key}",
        currency=currency,
        status="succeeded",
        created=created,
    )
    charge["refunds"].update(total_count=1, has_more=False)
    return event
