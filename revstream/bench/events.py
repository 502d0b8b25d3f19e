"""The webhooks the benchmark sends: Stripe `charge.succeeded` events, signed as Stripe signs them.

Every event of a run has ids unique to the run (`evt_bench<run>x<i>`, payment `pi_bench<run>x<i>`),
the ISO 4217 testing currency `xts`, livemode false and one fixed amount, so the totals API's
`xts` gross divided by the amount is exactly the number of distinct payments visible.
Duplicates are byte-identical re-deliveries of an event (what a provider retry looks like).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from revstream.send import stripe_signature_header

CURRENCY = "xts"  # ISO 4217's code reserved for testing: never real money
AMOUNT_MINOR = 1999


WEBHOOK_PATH = "/webhooks/stripe"


def event_id(run: str, index: int) -> str:
    return f"evt_bench{run}x{index}"


def payment_key(run: str, index: int) -> str:
    return f"pi_bench{run}x{index}"


def charge_body(run: str, index: int, created: int) -> bytes:
    """A charge.succeeded event shaped like Stripe's (2020-08-27 API), about 1.6 KB."""
    charge_id = f"ch_bench{run}x{index}"
    event = {
        "id": event_id(run, index),
        "object": "event",
        "api_version": "2020-08-27",
        "created": created,
        "data": {
            "object": {
                "id": charge_id,
                "object": "charge",
                "amount": AMOUNT_MINOR,
                "amount_captured": AMOUNT_MINOR,
                "amount_refunded": 0,
                "balance_transaction": f"txn_bench{run}x{index}",
                "billing_details": {
                    "address": {"city": None, "country": "US", "line1": None, "postal_code": "94110"},
                    "email": f"customer{index}@example.com",
                    "name": None,
                    "phone": None,
                },
                "captured": True,
                "created": created,
                "currency": CURRENCY,
                "customer": f"cus_bench{run}x{index % 1000}",
                "description": "revstream bench",
                "disputed": False,
                "livemode": False,
                "metadata": {"bench_run": run},
                "outcome": {
                    "network_status": "approved_by_network",
                    "reason": None,
                    "risk_level": "normal",
                    "seller_message": "Payment complete.",
                    "type": "authorized",
                },
                "paid": True,
                "payment_intent": payment_key(run, index),
                "payment_method": f"pm_bench{run}x{index}",
                "payment_method_details": {
                    "card": {
                        "brand": "visa",
                        "country": "US",
                        "exp_month": 12,
                        "exp_year": 2034,
                        "funding": "credit",
                        "last4": "4242",
                        "network": "visa",
                    },
                    "type": "card",
                },
                "receipt_url": f"https://pay.stripe.com/receipts/bench/{charge_id}",
                "refunded": False,
                "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0},
                "status": "succeeded",
            }
        },
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "charge.succeeded",
    }
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Plan:
    """Which event each request carries: `order[k]` is the event index of request k."""

    run: str
    unique: int
    order: list[int]


def plan(run: str, count: int, duplicate_ratio: float, shuffle: bool, seed: int = 7) -> Plan:
    """`count` requests: round(count * (1 - duplicate_ratio)) distinct events, the rest re-sends
    of random earlier ones; shuffled (a re-send may then arrive before its original) or not."""
    if not 0 <= duplicate_ratio < 1:
        raise ValueError("duplicate ratio must be in [0, 1)")
    unique = max(1, round(count * (1 - duplicate_ratio))) if count else 0
    rng = random.Random(seed)
    order = list(range(unique)) + [rng.randrange(unique) for _ in range(count - unique)]
    if shuffle:
        rng.shuffle(order)
    return Plan(run=run, unique=unique, order=order)


def http_request(host: str, path: str, body: bytes, secret: str, timestamp: int) -> bytes:
    """One complete HTTP/1.1 keep-alive request, signed (Stripe-Signature over "t.body")."""
    signature = stripe_signature_header(body, secret, timestamp)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def signed_requests(plan_: Plan, host: str, path: str, secret: str, now: float | None = None) -> list[bytes]:
    """Every request of the plan, pre-signed now (a run must finish within the signature tolerance)."""
    timestamp = int(time.time() if now is None else now)
    bodies = [charge_body(plan_.run, i, timestamp) for i in range(plan_.unique)]
    signed = [http_request(host, path, body, secret, timestamp) for body in bodies]
    return [signed[i] for i in plan_.order]
