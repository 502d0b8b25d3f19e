"""Fuzzing the HTTP edge in-process: 10,000 random or mutated requests per endpoint (Stripe
default and named, manual entries, Gumroad).

Every answer must be a 4xx (or 2xx where the request is genuinely valid), never a 5xx, never a
stack trace; the app must keep serving; and nothing may be published except what an independent
oracle says is valid. Kafka is replaced by a recording publisher and the idempotency store by a
dict (the real ones are exercised in tests/integration); the mutations are seeded, so a failure
reproduces exactly.
"""

import asyncio
import json
import random
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from ingest.gumroad_http import GumroadConfig, gumroad_routes
from ingest.http import FastPaths, IngestConfig, StripeEndpoint, StripeWebhooks
from ingest.idempotency import Claim
from ingest.manual_http import manual_entry_routes
from schemas.gumroad import FORM, JSON, PingError, identify, parse_ping
from schemas.manual import ManualEntry
from tests.gumroad_fixtures import SELLER, sale_fields, sale_form_bytes
from tests.stripe_fixtures import fixture_bytes, stripe_signature
from tests.unit.test_ingest_http import RecordingPublisher

pytestmark = pytest.mark.slow

PER_ENDPOINT = 10_000
SECRET = "whsec_fuzz"
ADMIN = "fuzz-admin"
GUMROAD_TOKEN = "gr_fuzz"
NOW = 1_800_000_000
SEED_BODIES = [
    fixture_bytes("stripe-sync-engine/charge.succeeded__1.json"),
    fixture_bytes("stripe-ruby-mock/charge.refunded__1.json"),
    fixture_bytes("stripe-openapi/objects/checkout.session.json"),
]
ENTRY = {"kind": "payment", "amount": "10.00", "currency": "usd", "occurred_at": "2026-11-01T10:00:00Z"}
JUNK_VALUES: list[object] = [None, True, -1, 0, 2**70, 1.5, "", "x" * 300, [], {}, "12.345", "\u0000", "NaN"]


class MemoryKeys:
    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], str] = {}

    async def claim(self, entity: str, key: str, body_sha256: str, provider_event_id: str) -> Claim:
        existing = self.bodies.setdefault((entity, key), body_sha256)
        if existing is body_sha256:
            return Claim.NEW
        return Claim.REPEAT if existing == body_sha256 else Claim.CONFLICT


def mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if not data or choice < 0.3:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        elif choice < 0.6:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.8:
            del data[rng.randrange(len(data)) :]
        else:
            start = rng.randrange(len(data))
            del data[start : start + rng.randint(1, 50)]
    return bytes(data)


def mutate_json(rng: random.Random, value: object, depth: int = 0) -> object:
    if isinstance(value, dict) and value:
        out = dict(value)
        key = rng.choice(list(out))
        action = rng.random()
        if action < 0.2:
            del out[key]
        elif action < 0.3:
            out[rng.choice(["id", "type", "object", "data", "amount", "x"])] = rng.choice(JUNK_VALUES)
        else:
            out[key] = mutate_json(rng, out[key], depth + 1) if depth < 6 else rng.choice(JUNK_VALUES)
        return out
    if isinstance(value, list) and value:
        out_list = list(value)
        out_list[rng.randrange(len(out_list))] = rng.choice(JUNK_VALUES)
        return out_list
    return rng.choice(JUNK_VALUES)


def random_body(rng: random.Random, seed: bytes) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return mutate_bytes(rng, seed)
    if roll < 0.8:
        return json.dumps(mutate_json(rng, json.loads(seed))).encode()
    if roll < 0.9:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    return json.dumps(rng.choice(JUNK_VALUES)).encode()


def random_headers(rng: random.Random, body: bytes, signed_ok: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {"content-type": "application/json"}
    roll = rng.random()
    if roll < 0.1:
        headers["content-type"] = rng.choice(
            ["text/plain", "", "application/json; charset=latin1", "a" * 300]
        )
    elif roll < 0.15:
        headers["content-length"] = rng.choice(["-1", "abc", "99999999999", "0"])
    sig_roll = rng.random()
    if signed_ok and sig_roll < 0.3:
        # Correctly signed mutated body: gets past the signature, must fail (or pass) on content.
        headers["stripe-signature"] = stripe_signature(body, SECRET, NOW)
    elif sig_roll < 0.5:
        headers["stripe-signature"] = stripe_signature(body, SECRET, NOW - rng.choice([301, 10**6, -301]))
    elif sig_roll < 0.8:
        parts = [f"t={rng.choice(['', 'x', str(NOW), '-1', '1' * 40])}", f"v1={rng.randbytes(32).hex()}"]
        rng.shuffle(parts)
        headers["stripe-signature"] = ",".join(parts * rng.randint(1, 3))
    elif sig_roll < 0.9:
        headers["stripe-signature"] = rng.randbytes(rng.randint(0, 40)).hex()
    return headers


def is_stripe_event(body: bytes) -> bool:
    """Oracle: would a correctly signed body be a publishable event?"""
    try:
        event = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and bool(event["id"])
        and isinstance(event.get("type"), str)
        and bool(event["type"])
    )


def is_gumroad_ping(body: bytes, content_type: str) -> bool:
    """Oracle: an identifiable ping from an allowed seller (or a subscription ping, which has none)."""
    try:
        ping = identify(parse_ping(body, content_type))
    except PingError:
        return False
    return ping.seller_id in (None, SELLER)


def is_entry(body: bytes) -> bool:
    try:
        ManualEntry.model_validate_json(body)
    except ValidationError:
        return False
    return True


async def _fuzz() -> dict[str, int]:
    publisher = RecordingPublisher()
    config = IngestConfig(
        [StripeEndpoint("default", "acme", [SECRET]), StripeEndpoint("eu", "acme-eu", [SECRET])],
        tolerance_s=300,
        max_body_bytes=64 * 1024,
        clock=lambda: NOW,
    )
    stripe = StripeWebhooks(config, publisher)
    routes = stripe.routes() + manual_entry_routes(
        admin_token=ADMIN,
        default_entity="acme",
        keys=MemoryKeys(),  # type: ignore[arg-type]
        publisher=publisher,
        max_body_bytes=64 * 1024,
    )
    gumroad_config = GumroadConfig(
        secret=GUMROAD_TOKEN, seller_ids=[SELLER], entity="acme", max_body_bytes=64 * 1024, clock=lambda: NOW
    )
    routes += gumroad_routes(gumroad_config, publisher)
    app = FastPaths(Starlette(routes=routes), stripe)  # as revstream.runner serves it
    rng = random.Random(20261121)
    counts = {"stripe": 0, "stripe-eu": 0, "manual": 0, "gumroad": 0, "published_ok": 0}
    expected_published = 0
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        for endpoint, path in (("stripe", "/webhooks/stripe"), ("stripe-eu", "/webhooks/stripe/eu")):
            for i in range(PER_ENDPOINT):
                body = random_body(rng, SEED_BODIES[i % len(SEED_BODIES)])
                headers = random_headers(rng, body, signed_ok=True)
                before = len(publisher.published)
                response = await client.post(path, content=body, headers=headers)
                assert response.status_code < 500, (endpoint, i, response.status_code, response.text)
                assert "Traceback" not in response.text
                if len(publisher.published) > before:
                    # Only a correctly signed, fresh, well-formed event may get through.
                    assert response.status_code == 200
                    assert headers.get("stripe-signature") == stripe_signature(body, SECRET, NOW)
                    assert headers["content-type"].split(";")[0] == "application/json"
                    assert is_stripe_event(body)
                    expected_published += 1
                counts[endpoint] += 1
        base = json.dumps(ENTRY).encode()
        for i in range(PER_ENDPOINT):
            body = random_body(rng, base)
            headers = random_headers(rng, body, signed_ok=False)
            roll = rng.random()
            if roll < 0.7:
                headers["authorization"] = f"Bearer {ADMIN}"
            elif roll < 0.85:
                headers["authorization"] = rng.choice(["Bearer", "Basic x", f"Bearer {ADMIN}x", ""])
            if rng.random() < 0.9:
                headers["idempotency-key"] = rng.choice([f"k{i}", "", " ", "a" * 300, "k/1", "ключ".encode()])
            before = len(publisher.published)
            response = await client.post("/api/v1/manual-entries", content=body, headers=headers)
            assert response.status_code < 500, ("manual", i, response.status_code, response.text)
            assert "Traceback" not in response.text
            if len(publisher.published) > before:
                assert response.status_code == 200 and is_entry(body)
                assert headers.get("authorization") == f"Bearer {ADMIN}"
                expected_published += 1
            counts["manual"] += 1
        seeds = [(sale_form_bytes(), FORM), (json.dumps(sale_fields()).encode(), JSON)]
        for i in range(PER_ENDPOINT):
            seed, kind = seeds[i % 2]
            body = mutate_bytes(rng, seed) if kind == FORM or rng.random() < 0.5 else random_body(rng, seed)
            headers = {"content-type": kind if rng.random() < 0.9 else rng.choice(["text/plain", "", "a/b"])}
            token = GUMROAD_TOKEN if rng.random() < 0.9 else rng.choice(["", "x", GUMROAD_TOKEN + "x"])
            before = len(publisher.published)
            response = await client.post(f"/webhooks/gumroad/{token}", content=body, headers=headers)
            assert response.status_code < 500, ("gumroad", i, response.status_code, response.text)
            assert "Traceback" not in response.text
            if len(publisher.published) > before:
                assert response.status_code == 200 and token == GUMROAD_TOKEN
                assert is_gumroad_ping(body, headers["content-type"])
                expected_published += 1
            counts["gumroad"] += 1
        # Still serving after all of it.
        good = SEED_BODIES[0]
        ok = await client.post(
            "/webhooks/stripe",
            content=good,
            headers={
                "content-type": "application/json",
                "stripe-signature": stripe_signature(good, SECRET, NOW),
            },
        )
        assert ok.status_code == 200
    counts["published_ok"] = len(publisher.published) - 1
    assert counts["published_ok"] == expected_published
    return counts


def test_ten_thousand_random_requests_per_endpoint_never_5xx_and_publish_only_valid_events() -> None:
    started = time.perf_counter()
    counts = asyncio.run(_fuzz())
    assert counts["stripe"] == counts["stripe-eu"] == counts["manual"] == counts["gumroad"] == PER_ENDPOINT
    print(f"fuzz: {counts} in {time.perf_counter() - started:.1f} s")
