"""Published Stripe payloads -> revenue records. Expected values were read off the fixtures by hand."""

import json
from datetime import UTC, datetime

import pytest

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope, Source
from schemas.revenue import EventState
from tests.stripe_fixtures import fixture_bytes, fixture_event


def envelope_for(body: bytes, entity: str = "acme") -> RawEnvelope:
    event = json.loads(body)
    return RawEnvelope(
        source=Source.STRIPE,
        endpoint="default",
        entity=entity,
        provider_event_id=event["id"],
        event_type=event["type"],
        livemode=bool(event.get("livemode")),
        received_at=datetime.now(UTC),
        content_type="application/json",
        body=body,
    )


def records(relative: str) -> list[tuple[str, str, int, str, bool]]:
    derived = derive(envelope_for(fixture_bytes(relative)))
    return [(r.record_id, r.kind.value, r.amount_minor, r.currency, r.livemode) for r in derived.revenue]


# (fixture, expected records (id, kind, minor units, currency, livemode))
EXPECTED = [
    (
        "stripe-ruby-mock/charge.succeeded__1.json",
        [("stripe:payment:pi_000000000000000000000000", "payment", 2000, "usd", False)],
    ),
    (
        "stripe-ruby-mock/payment_intent.succeeded__1.json",
        [("stripe:payment:pi_000000000000000000000000", "payment", 2000, "usd", False)],
    ),
    (
        "stripe-ruby-mock/payment_intent.succeeded__2.json",
        [("stripe:payment:pi_00000000000000", "payment", 900, "eur", False)],
    ),
    (
        "stripe-ruby-mock/checkout.session.completed__1.json",
        [("stripe:payment:pi_000000000000000000000000", "payment", 3000, "usd", False)],
    ),
    (
        "stripe-sync-engine/checkout.session.completed__1.json",
        [("stripe:payment:pi_1IqxJOJDPojXS6LN9uOebAea", "payment", 999, "eur", True)],
    ),
    (
        "stripe-sync-engine/charge.succeeded__1.json",
        [("stripe:payment:pi_3KtQThJDPojXS6LN0H9EfsjV", "payment", 3000, "usd", False)],
    ),
    (
        "stripe_event/charge.succeeded__1.json",
        [("stripe:payment:ch_00000000000000", "payment", 3279, "usd", False)],
    ),
    (
        "stripe-ruby-mock/charge.succeeded__3.json",  # 2013 shape: card + fee, no payment_intent
        [
            ("stripe:payment:ch_00000000000000", "payment", 14500, "usd", False),
            ("stripe:fee:ch_00000000000000", "fee", 451, "usd", False),
        ],
    ),
    (
        "stripe-ruby-mock/charge.refunded__1.json",
        [("stripe:refund:re_000000000000000000000000", "refund", 100, "usd", False)],
    ),
    (
        "stripe-sync-engine/charge.refunded__1.json",
        [("stripe:refund:re_3Kl36gJDPojXS6LN0eP4yPDz", "refund", 2500, "usd", False)],
    ),
    (
        "stripe-ruby-mock/charge.refunded__2.json",  # 2016: refunds as a list object
        [("stripe:refund:re_00000000000000", "refund", 1000, "usd", False)],
    ),
    (
        "stripe-ruby-mock/charge.refunded__3.json",  # 2013-10: bare array, refund without an id
        [("stripe:refund:ch_00000000000000#0", "refund", 1000, "usd", False)],
    ),
    (
        "stripe-java/charge.refunded__1.json",  # 2012: refunded=true and no amount_refunded: a full refund
        [("stripe:refunded_total:ch_00000000000000", "refunded_total", 1000, "usd", False)],
    ),
    # INCONSISTENT fixtures carry no money rather than corrupting state:
    ("stripe-ruby-mock/charge.refunded__4.json", []),  # refunded=true but amount_refunded=0, no list
    ("stripe-sync-engine/payment_intent.succeeded__1.json", []),  # status requires_payment_method
    ("stripe-ruby-mock/checkout.session.completed__3.json", []),  # setup mode: no payment
    # charge.failed: see tests/unit/test_stripe_ledger.py
]


@pytest.mark.parametrize(("fixture", "expected"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_fixture_records(fixture: str, expected: list) -> None:
    assert records(fixture) == expected


def test_paid_checkout_makes_an_order_linked_to_its_payment() -> None:
    derived = derive(envelope_for(fixture_bytes("stripe-sync-engine/checkout.session.completed__1.json")))
    (order,) = derived.orders
    assert order.order_id.startswith("stripe:order:cs_live_")
    assert (order.payment_key, order.amount_minor, order.currency, order.customer_id) == (
        "pi_1IqxJOJDPojXS6LN9uOebAea",
        999,
        "eur",
        "cus_IhGfebO16cMIGN",
    )
    assert derived.event.state is EventState.PROCESSED and derived.revenue[0].entity == "acme"


def test_one_purchase_three_events_one_payment_record() -> None:
    """checkout.session.completed, payment_intent.succeeded and charge.succeeded for one purchase."""
    pi = "pi_000000000000000000000000"
    session = fixture_event("stripe-ruby-mock/checkout.session.completed__1.json", id="evt_cs")
    session["data"]["object"]["amount_total"] = 2000  # the mock's session total disagrees with its charge
    bodies = [
        json.dumps(session).encode(),
        json.dumps(fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json", id="evt_pi")).encode(),
        json.dumps(fixture_event("stripe-ruby-mock/charge.succeeded__1.json", id="evt_ch")).encode(),
    ]
    ids = {r.record_id for body in bodies for r in derive(envelope_for(body)).revenue}
    assert ids == {f"stripe:payment:{pi}"}


def test_newer_event_has_the_higher_version() -> None:
    """Forward-only upserts keep the highest version: an older event never overrides a newer one."""
    older = derive(
        envelope_for(fixture_bytes("stripe-ruby-mock/checkout.session.completed__1.json"))
    ).revenue[0]
    newer = derive(envelope_for(fixture_bytes("stripe-ruby-mock/payment_intent.succeeded__1.json"))).revenue[
        0
    ]
    assert older.record_id == newer.record_id
    assert newer.version > older.version


def test_same_second_tie_break_is_deterministic() -> None:
    a = fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json", id="evt_a")
    b = fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json", id="evt_b")
    va = derive(envelope_for(json.dumps(a).encode())).revenue[0].version
    vb = derive(envelope_for(json.dumps(b).encode())).revenue[0].version
    assert va != vb
    assert va == derive(envelope_for(json.dumps(a).encode())).revenue[0].version


def test_zero_decimal_currency_is_kept_exact() -> None:
    event = fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json")
    event["data"]["object"].update(currency="JPY", amount=5000, amount_received=5000)
    (record,) = derive(envelope_for(json.dumps(event).encode())).revenue
    assert (record.amount_minor, record.currency) == (5000, "jpy")


@pytest.mark.parametrize("created", [2**63, -(2**62), 10**20])
def test_a_time_no_calendar_holds_fails_the_event_instead_of_blocking_its_partition(created: int) -> None:
    """An exception escaping derive() would re-deliver the whole batch forever."""
    for fixture in (
        "stripe-ruby-mock/payment_intent.succeeded__1.json",
        "stripe-ruby-mock/charge.succeeded__1.json",
    ):
        event = fixture_event(fixture)
        event["created"] = created
        derived = derive(envelope_for(json.dumps(event).encode()))
        assert derived.event.state is EventState.FAILED and derived.revenue == []
        assert "out of range" in (derived.event.error or "")


@pytest.mark.parametrize("amount", [12.5, "1000", -1, None, True])
def test_non_integer_money_fails_the_event_instead_of_guessing(amount: object) -> None:
    event = fixture_event("stripe-ruby-mock/payment_intent.succeeded__1.json")
    event["data"]["object"].update(amount=amount, amount_received=amount)
    derived = derive(envelope_for(json.dumps(event).encode()))
    assert derived.event.state is EventState.FAILED and derived.revenue == []
    assert "amount" in (derived.event.error or "")


def test_failed_refund_is_recorded_but_not_counted() -> None:
    event = fixture_event("stripe-ruby-mock/charge.refunded__1.json")
    event["data"]["object"]["refunds"]["data"][0]["status"] = "failed"
    event["data"]["object"]["amount_refunded"] = 0
    (refund,) = derive(envelope_for(json.dumps(event).encode())).revenue
    assert refund.counted is False and refund.status == "failed"


def test_every_fixture_event_derives_without_crashing() -> None:
    from tests.stripe_fixtures import STRIPE

    for path in STRIPE.rglob("*.json"):
        event = json.loads(path.read_bytes())
        if (
            isinstance(event, dict)
            and isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
        ):
            derived = derive(envelope_for(path.read_bytes()))
            assert derived.event.state in (EventState.PROCESSED, EventState.IGNORED), (
                path,
                derived.event.error,
            )
