"""Published Stripe payloads -> ledger records beyond payments: refund objects, disputes, failed
payments, fees, orders with a resolved customer. Expected values were read off the fixtures by hand.

Subscription and invoice-paid fixtures are not listed here: they belong to the subscription work
(the ledger derives nothing from them; charge.succeeded carries an invoice's money)."""

import json
from typing import Any

import pytest

from processors.revenue.derive import derive
from schemas.revenue import DerivedEvent, EventState
from tests.stripe_fixtures import fixture_bytes, fixture_event
from tests.unit.test_stripe_derive import envelope_for

Row = tuple[str, str, int, str, bool, str]


def derived(relative_or_event: str | dict[str, Any], entity: str = "acme") -> DerivedEvent:
    if isinstance(relative_or_event, str):
        body = fixture_bytes(relative_or_event)
    else:
        body = json.dumps(relative_or_event).encode()
    return derive(envelope_for(body, entity))


def rows(d: DerivedEvent) -> list[Row]:
    return [(r.record_id, r.kind.value, r.amount_minor, r.currency, r.counted, r.status) for r in d.revenue]


def wrap(
    relative: str, event_type: str, event_id: str = "evt_wrapped", livemode: bool = False
) -> dict[str, Any]:
    """pay-rails publishes only the event's `data` member: put it in an event envelope."""
    data = json.loads(fixture_bytes(relative))
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1_700_000_000,
        "livemode": livemode,
        "data": data,
    }


# (fixture, expected ledger rows (id, kind, minor units, currency, counted, status))
EXPECTED: list[tuple[str, list[Row]]] = [
    # -- disputes: counted while the money is withdrawn (or lost) --
    (  # inquiry: no money moves
        "stripe-ruby-mock/charge.dispute.created__1.json",
        [
            (
                "stripe:dispute:dp_000000000000000000000000",
                "dispute",
                100,
                "usd",
                False,
                "warning_needs_response",
            )
        ],
    ),
    (  # 2013 dispute: no id (one per charge), funds withdrawn on creation
        "stripe-ruby-mock/charge.dispute.created__2.json",
        [("stripe:dispute:ch_00000000000000", "dispute", 1000, "usd", True, "needs_response")],
    ),
    (
        "stripe-sync-engine/charge.dispute.created__1.json",
        [
            (
                "stripe:dispute:dp_1MLuxQJDPojXS6LNrukJCBBG",
                "dispute",
                1000,
                "usd",
                False,
                "warning_needs_response",
            )
        ],
    ),
    (  # withdrawn: the amount is out, plus the 15.00 dispute fee from its balance transaction
        "stripe-ruby-mock/charge.dispute.funds_withdrawn__1.json",
        [
            ("stripe:dispute:dp_00000000000000", "dispute", 25000, "usd", True, "funds_withdrawn"),
            ("stripe:fee:dispute:dp_00000000000000", "fee", 1500, "usd", True, "funds_withdrawn"),
        ],
    ),
    (
        "stripe-ruby-mock/charge.dispute.funds_reinstated__1.json",
        [
            ("stripe:dispute:dp_00000000000000", "dispute", 25000, "usd", False, "funds_reinstated"),
            ("stripe:fee:dispute:dp_00000000000000", "fee", 1500, "usd", True, "funds_reinstated"),
        ],
    ),
    (  # won: the money is back
        "stripe-ruby-mock/charge.dispute.closed__1.json",
        [("stripe:dispute:ch_00000000000000", "dispute", 1000, "usd", False, "won")],
    ),
    # INCONSISTENT: closed, but the dispute says warning_needs_response: it must not override state
    ("stripe-sync-engine/charge.dispute.closed__1.json", []),
    (  # 2012: the charge itself, flagged disputed
        "stripe-java/charge.disputed__1.json",
        [("stripe:dispute:ch_00000000000000", "dispute", 1000, "usd", True, "needs_response")],
    ),
    # -- refunds as their own objects: the same id as in charge.refunded's list --
    (
        "stripe-ruby-mock/charge.refund.updated__1.json",
        [("stripe:refund:re_000000000000000000000000", "refund", 100, "usd", True, "succeeded")],
    ),
    (
        "stripe-sync-engine/refund.created__1.json",
        [("stripe:refund:re_1Nispe2eZvKYlo2Cd31jOCgZ", "refund", 1000, "usd", True, "succeeded")],
    ),
    (
        "stripe-sync-engine/refund.updated__1.json",
        [("stripe:refund:re_1Nispe2eZvKYlo2Cd31jOCgZ", "refund", 1000, "usd", True, "succeeded")],
    ),
    # INCONSISTENT: refund.failed whose refund says succeeded: nothing, the good snapshot stands
    ("stripe-sync-engine/refund.failed__1.json", []),
    # -- failed payments: one row per payment, never money --
    (
        "stripe-ruby-mock/payment_intent.payment_failed__1.json",
        [
            (
                "stripe:failed_payment:pi_000000000000000000000000",
                "failed_payment",
                2000,
                "usd",
                False,
                "failed",
            )
        ],
    ),
    (
        "stripe-ruby-mock/charge.failed__1.json",
        [
            (
                "stripe:failed_payment:pi_000000000000000000000000",
                "failed_payment",
                2000,
                "usd",
                False,
                "failed",
            )
        ],
    ),
    (
        "stripe-ruby-mock/invoice.payment_failed__1.json",
        [
            (
                "stripe:failed_payment:pi_000000000000000000000000",
                "failed_payment",
                2000,
                "usd",
                False,
                "failed",
            )
        ],
    ),
    (  # 2018: no payment_intent, keyed by its charge
        "stripe-ruby-mock/invoice.payment_failed__2.json",
        [("stripe:failed_payment:ch_00000000000000", "failed_payment", 30000, "usd", False, "failed")],
    ),
    # 2012 invoice states no currency: nothing to count in minor units
    ("stripe-java/invoice.payment_failed__1.json", []),
    # -- the rest of the payment family, for completeness of the fixture types --
    (
        "stripe-java/charge.succeeded__1.json",
        [("stripe:payment:ch_00000000000000", "payment", 1000, "usd", True, "succeeded")],
    ),
    (
        "stripe-ruby-mock/charge.succeeded__2.json",
        [("stripe:payment:ch_00000000000000", "payment", 1000, "usd", True, "succeeded")],
    ),
    (
        "stripe-ruby-mock/checkout.session.completed__2.json",
        [("stripe:payment:pi_00000000000000", "payment", 25000, "usd", True, "succeeded")],
    ),
    (  # charge with a full list: the list explains amount_refunded, no refunded_total row
        "stripe-ruby-mock/charge.refunded__2.json",
        [("stripe:refund:re_00000000000000", "refund", 1000, "usd", True, "succeeded")],
    ),
    ("stripe-ruby-mock/charge.refunded__4.json", []),  # INCONSISTENT: refunded, amount_refunded 0
    ("stripe-sync-engine/payment_intent.succeeded__1.json", []),  # INCONSISTENT: requires_payment_method
]


@pytest.mark.parametrize(("fixture", "expected"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_fixture_ledger_rows(fixture: str, expected: list[Row]) -> None:
    result = derived(fixture)
    assert rows(result) == expected
    assert result.event.state is (EventState.PROCESSED if expected else EventState.IGNORED)


PAY_RAILS = [
    (
        "pay-rails/data_only/charge.succeeded__1.json",
        "charge.succeeded",
        [
            ("stripe:payment:pm_1234", "payment", 500, "usd", True, "succeeded"),
            ("stripe:fee:pm_1234:application", "fee", 128, "usd", True, "succeeded"),
        ],
    ),
    (  # partial refund, 500 of 1500, listed
        "pay-rails/data_only/charge.refunded__1.json",
        "charge.refunded",
        [("stripe:refund:re_3LQOJoKXBGcbgpbZ10i9Mg75", "refund", 500, "usd", True, "succeeded")],
    ),
    (
        "pay-rails/data_only/checkout.session.completed__1.json",
        "checkout.session.completed",
        [],
    ),  # subscription
    (
        "pay-rails/data_only/invoice.payment_failed__1.json",
        "invoice.payment_failed",
        [("stripe:failed_payment:in_1234", "failed_payment", 24900, "usd", False, "failed")],
    ),
]


@pytest.mark.parametrize(("fixture", "event_type", "expected"), PAY_RAILS, ids=[p[0] for p in PAY_RAILS])
def test_pay_rails_data_fragments(fixture: str, event_type: str, expected: list[Row]) -> None:
    assert rows(derived(wrap(fixture, event_type))) == expected


def test_entity_and_livemode_on_every_record() -> None:
    event = wrap("pay-rails/data_only/charge.succeeded__1.json", "charge.succeeded", livemode=True)
    records = derived(event, entity="acme-gmbh").revenue
    assert records and all(r.entity == "acme-gmbh" and r.livemode for r in records)


def test_order_needs_a_resolved_customer() -> None:
    """Resolved = a Stripe customer id, or the buyer's email. Neither: revenue, but no order."""
    event = fixture_event("stripe-ruby-mock/checkout.session.completed__1.json")
    session = event["data"]["object"]
    (order,) = derived(event).orders
    assert (order.customer_id, order.customer_email) == ("cus_00000000000000", "stripe@example.com")

    session["customer"] = None
    (order,) = derived(event).orders
    assert (order.customer_id, order.customer_email) == (None, "stripe@example.com")

    session["customer_details"] = None
    session["customer_email"] = "legacy@example.com"
    assert derived(event).orders[0].customer_email == "legacy@example.com"

    session["customer_email"] = None
    anonymous = derived(event)
    assert anonymous.orders == [] and [r.kind.value for r in anonymous.revenue] == ["payment"]


def test_async_payment_succeeded_makes_the_order_later() -> None:
    pending = fixture_event("stripe-ruby-mock/checkout.session.completed__1.json")
    pending["data"]["object"]["payment_status"] = "unpaid"
    assert derived(pending).revenue == [] and derived(pending).orders == []

    settled = fixture_event(
        "stripe-ruby-mock/checkout.session.completed__1.json",
        id="evt_async",
        type="checkout.session.async_payment_succeeded",
        created=pending["created"] + 3600,
    )
    result = derived(settled)
    (order,) = result.orders
    assert order.order_id == "stripe:order:" + settled["data"]["object"]["id"]
    assert [(r.record_id, r.amount_minor) for r in result.revenue] == [
        ("stripe:payment:pi_000000000000000000000000", 3000)
    ]


def test_async_payment_failed_is_a_failed_payment() -> None:
    event = fixture_event(
        "stripe-ruby-mock/checkout.session.completed__1.json", type="checkout.session.async_payment_failed"
    )
    event["data"]["object"]["payment_status"] = "unpaid"
    assert rows(derived(event)) == [
        ("stripe:failed_payment:pi_000000000000000000000000", "failed_payment", 3000, "usd", False, "failed")
    ]


def test_a_really_failed_refund_is_kept_but_not_counted() -> None:
    event = fixture_event("stripe-sync-engine/refund.failed__1.json")
    event["data"]["object"]["status"] = "failed"
    assert rows(derived(event)) == [
        ("stripe:refund:re_1Nispe2eZvKYlo2Cd31jOCgZ", "refund", 1000, "usd", False, "failed")
    ]


@pytest.mark.parametrize(
    ("status", "counted"),
    [("lost", True), ("won", False), ("warning_closed", False), ("charge_refunded", False)],
)
def test_dispute_outcomes(status: str, counted: bool) -> None:
    event = fixture_event("stripe-sync-engine/charge.dispute.closed__1.json")
    event["data"]["object"]["status"] = status
    (record,) = derived(event).revenue
    assert (record.status, record.counted, record.payment_key) == (
        status,
        counted,
        "pi_1IqtG9JDPojXS6LNOGnYrIqq",
    )


def test_dispute_steps_in_one_second_order_by_lifecycle() -> None:
    """created and funds_withdrawn usually share a second: funds_withdrawn must win, whatever the ids."""
    for suffix in range(20):
        base = fixture_event("stripe-ruby-mock/charge.dispute.funds_withdrawn__1.json")
        created = dict(base, id=f"evt_a{suffix}", type="charge.dispute.created")
        created["data"] = {"object": dict(base["data"]["object"], balance_transactions=[])}
        withdrawn = dict(base, id=f"evt_b{suffix}")
        closed = dict(base, id=f"evt_c{suffix}", type="charge.dispute.closed")
        closed["data"] = {"object": dict(base["data"]["object"], status="lost")}
        versions = [derived(e).revenue[0].version for e in (created, withdrawn, closed)]
        assert versions == sorted(versions) and len(set(versions)) == 3


def test_zero_decimal_dispute_and_refund_are_exact() -> None:
    dispute = fixture_event("stripe-ruby-mock/charge.dispute.created__2.json")
    dispute["data"]["object"].update(currency="JPY", amount=123456)
    refund = fixture_event("stripe-sync-engine/refund.created__1.json")
    refund["data"]["object"].update(currency="jpy", amount=7)
    assert [(r.amount_minor, r.currency) for r in derived(dispute).revenue] == [(123456, "jpy")]
    assert [(r.amount_minor, r.currency) for r in derived(refund).revenue] == [(7, "jpy")]


def test_expanded_balance_transaction_fee_in_its_settlement_currency() -> None:
    event = fixture_event("stripe-ruby-mock/charge.succeeded__1.json")
    event["data"]["object"]["balance_transaction"] = {"id": "txn_1", "fee": 87, "currency": "gbp"}
    assert rows(derived(event))[1] == (
        "stripe:fee:pi_000000000000000000000000",
        "fee",
        87,
        "gbp",
        True,
        "succeeded",
    )


@pytest.mark.parametrize("amount", [1.5, "100", -5, None])
def test_bad_dispute_amount_fails_the_event(amount: object) -> None:
    event = fixture_event("stripe-ruby-mock/charge.dispute.funds_withdrawn__1.json")
    event["data"]["object"]["amount"] = amount
    result = derived(event)
    assert result.event.state is EventState.FAILED and result.revenue == []


def test_refund_list_omitted_since_2022_11_15_uses_the_charge_total() -> None:
    event = fixture_event("stripe-sync-engine/charge.refunded__1.json")
    charge = event["data"]["object"]
    del charge["refunds"]
    charge["amount_refunded"] = 1200
    assert rows(derived(event)) == [
        (
            "stripe:refunded_total:ch_3Kl36gJDPojXS6LN0DCM4A8l",
            "refunded_total",
            1200,
            "usd",
            True,
            "succeeded",
        )
    ]
