"""Gumroad pings -> identity and revenue records, on the published ping and variants of it."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope, Source
from schemas.gumroad import RESOURCES, PingError, identify, parse_ping
from schemas.revenue import EventState, RevenueKind
from tests.gumroad_fixtures import (
    FORM,
    SALE_ID,
    SELLER,
    form,
    ping,
    sale_fields,
    sale_form_bytes,
    subscription_ping,
)

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(body: bytes, content_type: str = FORM) -> RawEnvelope:
    kind = content_type.split(";")[0]
    facts = identify(parse_ping(body, kind))
    return RawEnvelope(
        source=Source.GUMROAD,
        endpoint="default",
        entity="acme",
        provider_event_id=facts.event_id,
        event_type=facts.resource,
        livemode=facts.livemode,
        received_at=RECEIVED,
        content_type=content_type,
        body=body,
    )


def as_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields).encode()


# -- the wire format ------------------------------------------------------------------------------
def test_the_published_form_ping_parses_to_its_decoded_fields() -> None:
    assert parse_ping(sale_form_bytes(), FORM) == sale_fields()


def test_the_published_ping_is_a_test_mode_sale_of_its_seller() -> None:
    facts = identify(parse_ping(sale_form_bytes(), FORM))
    assert facts.resource == "sale"  # no resource_name: the classic Ping / test ping
    assert facts.event_id == f"{SALE_ID}:sale" and facts.object_key == SALE_ID
    assert facts.seller_id == SELLER and facts.livemode is False  # test=true


def test_json_and_form_pings_of_one_sale_have_one_identity() -> None:
    fields = ping(test=None, resource_name="sale")
    by_form, by_json = (
        identify(parse_ping(form(fields), FORM)),
        identify(parse_ping(as_json(fields), "application/json")),
    )
    assert by_form == by_json and by_form.livemode is True


def test_a_retry_keeps_the_dedupe_key_and_a_refund_gets_its_own() -> None:
    first = identify(ping(resource_name="sale"))
    assert identify(ping(resource_name="sale", retry_count="1")).event_id == first.event_id
    assert identify(ping(resource_name="refund", refunded="true")).event_id == f"{SALE_ID}:refund"
    # a stated cumulative amount separates two partial refunds of one sale
    assert (
        identify(ping(resource_name="refund", amount_refunded_in_cents="100")).event_id
        == f"{SALE_ID}:refund:100"
    )


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_every_resource_is_identified(resource: str) -> None:
    fields = (
        subscription_ping(resource)
        if resource.startswith(("cancel", "subscription"))
        else ping(resource_name=resource)
    )
    facts = identify(fields)
    assert facts.resource == resource and facts.event_id.startswith(facts.object_key + ":" + resource)


def test_subscription_pings_have_no_seller_and_are_keyed_by_subscription_and_time() -> None:
    facts = identify(subscription_ping("cancellation"))
    assert facts.seller_id is None
    assert facts.event_id == "sub_Xy12ab==:cancellation:2023-02-01T10:00:00Z"
    assert (
        identify(subscription_ping("subscription_restarted")).event_id
        == "sub_Xy12ab==:subscription_restarted"
    )


@pytest.mark.parametrize(
    "fields",
    [
        ping(resource_name="purchase"),
        ping(sale_id=None),
        ping(sale_id=None, resource_name=None),
        ping(seller_id=None),
        ping(sale_id="abc\ndef"),
        ping(sale_id="x" * 200),
        subscription_ping("cancellation", subscription_id=""),
    ],
)
def test_unidentifiable_pings_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(PingError):
        identify(fields)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"[1, 2]", "application/json"),
        (b"{nope", "application/json"),
        (b"\xff\xfe=1", FORM),
        (b"a=1", "text/plain"),
    ],
)
def test_unparseable_bodies_are_refused(body: bytes, kind: str) -> None:
    with pytest.raises(PingError):
        parse_ping(body, kind)


# -- derivation ------------------------------------------------------------------------------------
def test_the_published_sale_is_one_test_mode_payment_and_order() -> None:
    derived = derive(envelope(sale_form_bytes()))
    assert derived.event.state is EventState.PROCESSED and derived.event.error is None
    (payment,) = derived.revenue
    assert payment.record_id == f"gumroad:payment:{SALE_ID}" and payment.kind is RevenueKind.PAYMENT
    assert (payment.amount_minor, payment.currency, payment.livemode) == (3000, "usd", False)
    assert payment.occurred_at == datetime(2023, 1, 1, 15, 50, 55, tzinfo=UTC)
    assert payment.payment_key == f"gumroad:{SALE_ID}" and payment.entity == "acme"
    assert payment.product == sale_fields()["product_id"]  # for trends by product
    (order,) = derived.orders
    assert order.order_id == f"gumroad:order:{SALE_ID}" and order.amount_minor == 3000
    assert derived.event.event_created_at == payment.occurred_at


def test_json_ping_derives_the_same_records_as_the_form_ping() -> None:
    fields = sale_fields()
    by_form = derive(envelope(form(fields)))
    by_json = derive(envelope(as_json(fields), "application/json; charset=utf-8"))
    assert by_form.revenue == by_json.revenue and by_form.orders == by_json.orders


def test_a_retry_derives_identical_records() -> None:
    first = derive(envelope(form(ping(resource_name="sale"))))
    retry = derive(envelope(form(ping(resource_name="sale", retry_count="2"))))
    assert first == retry


def test_price_is_usd_cents_whatever_the_listing_currency() -> None:
    """The interpretation documented in processors/revenue/gumroad_events.py: kept as sent, USD."""
    (payment,) = derive(envelope(form(ping(price="1100", currency="eur")))).revenue
    assert (payment.amount_minor, payment.currency) == (1100, "usd")


@pytest.mark.parametrize("price", ["30.00", "-5", "3e3", ""])
def test_a_price_that_is_not_integer_cents_fails_the_event(price: str) -> None:
    derived = derive(envelope(form(ping(price=price))))
    assert derived.event.state is EventState.FAILED and derived.revenue == []


def test_a_gift_counts_the_gifters_price() -> None:
    fields = ping(price="0", is_gift_receiver_purchase="true", gift_price="500")
    (payment,) = derive(envelope(form(fields))).revenue
    assert payment.amount_minor == 500


def test_a_renewal_is_a_payment_without_an_order_and_a_preorder_is_not_revenue() -> None:
    renewal = derive(envelope(form(ping(is_recurring_charge="true"))))
    assert len(renewal.revenue) == 1 and renewal.orders == []
    preorder = derive(envelope(form(ping(is_preorder_authorization="true"))))
    assert preorder.event.state is EventState.IGNORED and "pre-order" in (preorder.event.error or "")


def test_a_full_refund_refunds_the_price() -> None:
    derived = derive(envelope(form(ping(resource_name="refund", refunded="true"))))
    (refund,) = derived.revenue
    assert refund.record_id == f"gumroad:refund:{SALE_ID}" and refund.kind is RevenueKind.REFUND
    assert (refund.amount_minor, refund.currency, refund.payment_key) == (3000, "usd", f"gumroad:{SALE_ID}")


def test_partial_refunds_only_move_forward() -> None:
    first = derive(
        envelope(
            form(ping(resource_name="refund", partially_refunded="true", amount_refunded_in_cents="100"))
        )
    )
    second = derive(
        envelope(
            form(ping(resource_name="refund", partially_refunded="true", amount_refunded_in_cents="250"))
        )
    )
    (a,), (b,) = first.revenue, second.revenue
    assert a.record_id == b.record_id and (a.amount_minor, b.amount_minor) == (100, 250)
    assert b.version > a.version  # the larger cumulative amount wins in any delivery order


@pytest.mark.parametrize(
    ("changes", "state", "reason"),
    [
        ({"partially_refunded": "true"}, EventState.FAILED, "no amount_refunded_in_cents"),
        ({"refunded": "false"}, EventState.IGNORED, "does not mark refunded"),
        ({"amount_refunded_in_cents": "3001"}, EventState.FAILED, "exceeds"),
    ],
)
def test_refunds_that_cannot_be_counted_say_why(
    changes: dict[str, str], state: EventState, reason: str
) -> None:
    derived = derive(envelope(form(ping(resource_name="refund", **changes))))
    assert derived.event.state is state and derived.revenue == []
    assert reason in (derived.event.error or "")


@pytest.mark.parametrize("resource", ["dispute", "dispute_won"])
def test_disputes_are_recorded_as_ignored_with_the_reason(resource: str) -> None:
    derived = derive(envelope(form(ping(resource_name=resource, disputed="true"))))
    assert derived.event.state is EventState.IGNORED and derived.revenue == []
    assert "no dispute kind" in (derived.event.error or "")


@pytest.mark.parametrize(
    "resource", ["cancellation", "subscription_updated", "subscription_ended", "subscription_restarted"]
)
def test_subscription_resources_are_acknowledged_and_recorded(resource: str) -> None:
    derived = derive(envelope(form(subscription_ping(resource))))
    assert derived.event.state is EventState.IGNORED and derived.revenue == [] and derived.orders == []
    assert derived.event.event_type == resource and "no money" in (derived.event.error or "")
    assert derived.event.event_created_at is not None
