"""The published Gumroad ping (tests/fixtures/gumroad, see SOURCES.md) and variants built from it
the way Gumroad builds its other resources (same purchase fields, another `resource_name`)."""

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

GUMROAD = Path(__file__).parent / "fixtures" / "gumroad" / "bluemods-GumroadAPI"
SALE_FORM = GUMROAD / "ping_sale__1.txt"
SALE_FIELDS = GUMROAD / "ping_sale__1.fields.json"
SELLER = "asdfasdfasdfasdf=="
SALE_ID = "asdfasdfasdfasdf=="
FORM = "application/x-www-form-urlencoded"


def sale_form_bytes() -> bytes:
    """The real ping, byte for byte (note its unencoded space in ip_country)."""
    return SALE_FORM.read_bytes()


def sale_fields() -> dict[str, str]:
    return dict(json.loads(SALE_FIELDS.read_text()))


def form(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


def ping(**changes: Any) -> dict[str, Any]:
    """The fixture's fields with changes applied; a value of None removes the field."""
    fields: dict[str, Any] = sale_fields()
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


def subscription_ping(resource: str, **changes: Any) -> dict[str, Any]:
    """Gumroad's subscription payload shape (Subscription::PingNotification): no sale, no seller."""
    fields: dict[str, Any] = {
        "subscription_id": "sub_Xy12ab==",
        "product_id": "prod_1",
        "product_name": "Pencil",
        "user_id": "buyer_1",
        "user_email": "test@gumroad.com",
        "created_at": "2023-01-01T15:50:55Z",
        "charge_occurrence_count": "",
        "recurrence": "monthly",
        "free_trial_ends_at": "",
        "resource_name": resource,
    }
    if resource == "cancellation":
        fields |= {"cancelled": "true", "cancelled_at": "2023-02-01T10:00:00Z", "cancelled_by_buyer": "true"}
    if resource == "subscription_ended":
        fields |= {"ended_at": "2023-03-01T10:00:00Z", "ended_reason": "cancelled"}
    fields.update(changes)
    return fields
