"""Loading published Stripe payloads (tests/fixtures, see SOURCES.md) and signing them the way
Stripe does: v1 = hex(HMAC-SHA256(secret, f"{t}.{raw body}")). Written from Stripe's documented
scheme with hmac, independently of the stripe library that ingest verifies with."""

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
STRIPE = FIXTURES / "stripe"


def fixture_bytes(relative: str) -> bytes:
    return (STRIPE / relative).read_bytes()


def fixture_event(relative: str, **overrides: Any) -> dict[str, Any]:
    event = json.loads(fixture_bytes(relative))
    event.update(overrides)
    return event


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
