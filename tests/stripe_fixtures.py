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
