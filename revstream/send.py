"""`revstream send-stripe FILE`: sign a Stripe event file with STRIPE_WEBHOOK_SECRET the way Stripe
does and POST it to a running ingest, for trying the pipeline by hand."""

import hashlib
import hmac
import time
from pathlib import Path

import httpx

from revstream.settings import Settings


def stripe_signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<raw body>"))."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


def send_stripe(settings: Settings, path: Path, url: str | None) -> int:
    settings.require("STRIPE_WEBHOOK_SECRET")
    body = path.read_bytes()
    target = url or f"http://{settings.host}:{settings.port}/webhooks/stripe"
    header = stripe_signature_header(body, settings.stripe_webhook_secrets[0].get_secret_value())
    try:
        response = httpx.post(
            target, content=body, headers={"Content-Type": "application/json", "Stripe-Signature": header}
        )
    except httpx.HTTPError as exc:
        print(f"revstream: could not reach {target} ({exc}): is `revstream up` running?")
        return 1
    print(f"{response.status_code} {response.text}")
    return 0 if response.is_success else 1
