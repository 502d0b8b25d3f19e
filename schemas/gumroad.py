"""Gumroad pings: the wire format and the identity of one ping. Pure (no I/O); shared by ingest
(to authenticate, key and envelope a ping) and the processor (to derive it).

What Gumroad sends (its source, app/modules/{purchase,subscription}/ping_notification.rb, and
app/sidekiq/post_to_individual_ping_endpoint_worker.rb):
- A flat form (application/x-www-form-urlencoded; nested hashes as `card[visual]=...`), or JSON
  for sellers who chose it. Values in forms are strings ("true", "3000"); in JSON they are typed.
- Sale-type resources (sale, refund, dispute, dispute_won) send the purchase: `sale_id`,
  `seller_id`, `price`, `currency`, `sale_timestamp`, `refunded`, `disputed`, `dispute_won`,
  `test` (only when the seller bought their own product) and `resource_name`. The classic
  "Ping" setting and the dashboard's test ping send the same purchase without `resource_name`:
  a ping with a `sale_id` and no `resource_name` is a sale.
- Subscription resources (cancellation, subscription_updated, subscription_ended,
  subscription_restarted) send the subscription: `subscription_id`, `resource_name`,
  `cancelled_at` / `ended_at` / `effective_as_of`, and NO `seller_id` and no `sale_id`.
- A retry is the same payload plus `retry_count` (1, 2, 3), sent only after a 499/5xx answer.
"""

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

SALE = "sale"
REFUND = "refund"
SALE_RESOURCES = frozenset({SALE, REFUND, "dispute", "dispute_won"})
SUBSCRIPTION_RESOURCES = frozenset(
    {"cancellation", "subscription_updated", "subscription_ended", "subscription_restarted"}
)
RESOURCES = SALE_RESOURCES | SUBSCRIPTION_RESOURCES

MAX_FIELDS = 1000
# Gumroad ids are url-safe base64 ("asdfasdfasdfasdf=="); timestamps are ISO-8601.
_ID = re.compile(r"^[A-Za-z0-9_\-+/=.]{1,128}$")
_STAMP = re.compile(r"^[0-9A-Za-z:.+\-]{1,64}$")
# Which field tells two events of one subscription and resource apart (a subscription can be
# cancelled, restarted and cancelled again).
_SUBSCRIPTION_STAMPS = {
    "cancellation": "cancelled_at",
    "subscription_ended": "ended_at",
    "subscription_updated": "effective_as_of",
}

Ping = dict[str, Any]


class PingError(ValueError):
    """The body is not a Gumroad ping we can identify; the message is safe to show a client."""


def parse_ping(body: bytes, media_type: str) -> Ping:
    """The ping's top-level fields. Form values stay strings (a repeated key becomes a list)."""
    if media_type == JSON:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            raise PingError("body is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise PingError("body is not a JSON object")
        return parsed
    if media_type != FORM:
        raise PingError(f"Content-Type must be {FORM} or {JSON}")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except ValueError:  # UnicodeDecodeError included
        raise PingError(f"body is not a UTF-8 form of at most {MAX_FIELDS} fields") from None
    ping: Ping = {}
    for key, value in pairs:
        previous = ping.get(key)
        if previous is None:
            ping[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            ping[key] = [previous, value]
    return ping


def text(ping: Ping, field: str) -> str | None:
    """A scalar field as text ("" and absent are None); lists and objects are not text."""
    value = ping.get(field)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def flag(ping: Ping, field: str) -> bool:
    """Gumroad booleans: JSON true, or "true" / "1" in a form."""
    value = ping.get(field)
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in ("true", "1")


def cents(ping: Ping, field: str) -> int | None:
    """A non-negative integer amount (JSON integer or a string of digits); None when absent.

    Raises ValueError for anything else (floats, "30.00", negatives): never rounded or guessed."""
    value = ping.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        return int(value.strip())
    raise ValueError(f"{field} is not a non-negative integer number of cents")


@dataclass(frozen=True)
class PingIdentity:
    """Who and what a ping is about, and its dedupe key."""

    resource: str
    event_id: str  # the RawEnvelope.provider_event_id
    object_key: str  # sale_id or subscription_id: the Kafka key, one partition per purchase
    seller_id: str | None  # None for subscription resources (Gumroad does not send it)
    livemode: bool  # False when Gumroad marks the ping `test`


def _id(ping: Ping, field: str) -> str:
    value = text(ping, field)
    if value is None:
        raise PingError(f"{field} is missing")
    if not _ID.match(value):
        raise PingError(f"{field} is not a Gumroad id")
    return value


def identify(ping: Ping) -> PingIdentity:
    """The ping's resource, dedupe key and seller; PingError when it cannot be identified.

    Dedupe key: `<sale_id>:<resource_name>` (a refund reuses its sale's id, so the resource is part
    of the key). Retries add `retry_count` and keep this key, so they are duplicates; nothing is
    ever keyed on a body hash. Two refinements keep distinct events distinct:
    - a refund ping that states the cumulative refunded amount (`amount_refunded_in_cents`) adds it
      (`<sale_id>:refund:<amount>`), so a second partial refund is not taken for a retry of the first;
    - subscription resources have no sale: `<subscription_id>:<resource_name>[:<cancelled_at |
      ended_at | effective_as_of>]`.
    """
    resource = text(ping, "resource_name")
    if resource is None:
        if text(ping, "sale_id") is None:
            raise PingError("resource_name is missing and there is no sale_id")
        resource = SALE  # the classic Ping setting and the test ping send sales without it
    if resource not in RESOURCES:
        raise PingError("resource_name is not one of " + ", ".join(sorted(RESOURCES)))
    livemode = not flag(ping, "test")
    if resource in SALE_RESOURCES:
        sale_id = _id(ping, "sale_id")
        seller_id = _id(ping, "seller_id")
        event_id = f"{sale_id}:{resource}"
        refunded = text(ping, "amount_refunded_in_cents")
        if resource == REFUND and refunded is not None and refunded.isdigit() and len(refunded) <= 18:
            event_id += f":{int(refunded)}"
        return PingIdentity(resource, event_id, sale_id, seller_id, livemode)
    subscription_id = _id(ping, "subscription_id")
    event_id = f"{subscription_id}:{resource}"
    stamp_field = _SUBSCRIPTION_STAMPS.get(resource)
    stamp = text(ping, stamp_field) if stamp_field else None
    if stamp is not None and _STAMP.match(stamp):
        event_id += f":{stamp}"
    return PingIdentity(resource, event_id, subscription_id, None, livemode)
