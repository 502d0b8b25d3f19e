"""Stripe webhook verification and reading, pure (no I/O): bytes + header + clock -> facts.

Verification uses the stripe library's own HMAC check against each configured secret (several
during a rotation). The timestamp window is checked here with an injected clock, in both
directions, so a replayed or far-future signature is refused.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Bound once: `stripe.X` resolves through the package's lazy __getattr__ (an import per access).
from stripe import SignatureVerificationError, WebhookSignature

from ingest.rejections import Rejected


@dataclass(frozen=True)
class StripeEventFacts:
    """What ingest needs from a verified event to envelope and key it."""

    event_id: str
    event_type: str
    livemode: bool
    object_id: str | None


def _signature_timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise ValueError("no t= element")


def verify_signature(
    body: bytes, header: str | None, secrets: Sequence[str], tolerance_s: int, now: float
) -> None:
    """Raise Rejected unless `header` is a valid Stripe-Signature for `body` under one of `secrets`
    and its timestamp is within `tolerance_s` of `now`."""
    if not header:
        raise Rejected(400, "missing_signature", "Stripe-Signature header is missing")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "malformed_body", "body is not UTF-8 JSON") from None
    verified = False
    for secret in secrets:
        try:
            WebhookSignature.verify_header(body, header, secret, tolerance=None)
        except SignatureVerificationError:
            continue
        verified = True
        break
    if not verified:
        raise Rejected(400, "bad_signature", "no Stripe-Signature v1 value matches a configured secret")
    try:
        timestamp = _signature_timestamp(header)
    except ValueError:
        raise Rejected(400, "bad_signature", "Stripe-Signature has no valid t= timestamp") from None
    if abs(now - timestamp) > tolerance_s:
        raise Rejected(
            400, "stale_timestamp", f"signature timestamp is outside the {tolerance_s} s tolerance"
        )


def read_event(body: bytes) -> StripeEventFacts:
    """Read the few envelope facts from a verified body; raise Rejected if it is not an event."""
    try:
        event: Any = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed_body", "body is not valid JSON") from None
    if not isinstance(event, dict):
        raise Rejected(400, "malformed_body", "body is not a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise Rejected(400, "malformed_body", "event has no string id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 255:
        raise Rejected(400, "malformed_body", "event has no string type")
    livemode = event.get("livemode", False)
    if not isinstance(livemode, bool):
        raise Rejected(400, "malformed_body", "livemode is not a boolean")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    object_id = obj.get("id") if isinstance(obj, dict) else None
    if object_id is None:  # thin (v2) events point at their object instead of embedding it
        related = event.get("related_object")
        object_id = related.get("id") if isinstance(related, dict) else None
    return StripeEventFacts(
        event_id=event_id,
        event_type=event_type,
        livemode=livemode,
        object_id=object_id if isinstance(object_id, str) else None,
    )
