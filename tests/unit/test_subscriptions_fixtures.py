"""Every published subscription / invoice payload -> the expected subscription snapshots and invoice
records. Expected values were read off the fixtures by hand (the comments say from where)."""

import json
from typing import Any

import pytest

from processors.revenue.derive import derive
from schemas.revenue import DerivedEvent, EventState
from schemas.subscriptions import replay_subscription
from tests.stripe_fixtures import STRIPE, fixture_bytes
from tests.unit.test_stripe_derive import envelope_for

# (fixture, [(subscription_key, status, currency, mrr_minor)])
SNAPSHOTS = [
    # 2012 (no subscription id, no api_version): annual plan 27600 -> 27600 / 12 a month.
    (
        "stripe-java/customer.subscription.created__1.json",
        [("legacy:cus_00000000000000", "active", "usd", 2300)],
    ),
    (
        "stripe-java/customer.subscription.updated__1.json",
        [("legacy:cus_00000000000000", "active", "usd", 2300)],
    ),
    (
        "stripe-java/customer.subscription.deleted__1.json",
        [("legacy:cus_00000000000000", "canceled", "usd", 0)],
    ),
    # 2020-08-27: items with plan and price, 1500 usd x 1 monthly.
    (
        "stripe-ruby-mock/customer.subscription.created__1.json",
        [("sub_000000000000000000000000", "active", "usd", 1500)],
    ),
    (
        "stripe-ruby-mock/customer.subscription.updated__1.json",
        [("sub_000000000000000000000000", "active", "usd", 1500)],
    ),
    (
        "stripe-ruby-mock/customer.subscription.deleted__1.json",
        [("sub_000000000000000000000000", "canceled", "usd", 0)],
    ),
    # 2013: single plan, trialing -> no MRR.
    (
        "stripe-ruby-mock/customer.subscription.updated__3.json",
        [("legacy:cus_00000000000000", "trialing", "usd", 0)],
    ),
    # 2020-03-02: a free plan (amount 0), one item without a quantity.
    (
        "stripe-sync-engine/customer.subscription.created__1.json",
        [("sub_JdIzvfy6o5GZRd", "active", "usd", 0)],
    ),
    (
        "stripe-sync-engine/customer.subscription.updated__1.json",
        [("sub_JLEPMp81LApOJl", "active", "usd", 0)],
    ),
    (
        "stripe-sync-engine/customer.subscription.deleted__1.json",
        [("sub_JdIzvfy6o5GZRd", "canceled", "usd", 0)],
    ),
]

# Stripe does not allow items in several currencies: recorded as ignored, with the reason.
MIXED_CURRENCY = [
    "stripe-ruby-mock/customer.subscription.created__2.json",
    "stripe-ruby-mock/customer.subscription.updated__2.json",
    "stripe-ruby-mock/customer.subscription.deleted__2.json",
]

# (fixture, invoice_key, subscription_key, status, payment_failed, amount_due, amount_paid, currency)
INVOICES = [
    # 2018: no status field, paid=false; subscription on the invoice.
    (
        "stripe-ruby-mock/invoice.payment_failed__2.json",
        "in_00000000000000",
        "su_00000000000000",
        "open",
        True,
        30000,
        0,
        "usd",
    ),
    # 2019: no amount_paid, paid=true.
    (
        "stripe-ruby-mock/invoice.payment_succeeded__2.json",
        "in_00000000000000",
        "sub_00000000000000",
        "paid",
        False,
        999,
        999,
        "eur",
    ),
    # 2013: the subscription only as a `type: subscription` line whose id is the subscription's.
    (
        "stripe-ruby-mock/invoice.payment_succeeded__3.json",
        "in_00000000000000",
        "su_2hkscimMTuAjFP",
        "paid",
        False,
        1000,
        1000,
        "usd",
    ),
    # 2020-03-02: a zero-amount subscription_cycle invoice.
    (
        "stripe-sync-engine/invoice.paid__1.json",
        "in_1KJqKBJDPojXS6LNJbvLUgEy",
        "sub_JsuPyCPhXWfZar",
        "paid",
        False,
        0,
        0,
        "usd",
    ),
]

# One-off invoices (no subscription named anywhere): not subscription state.
ONE_OFF_INVOICES = [
    "stripe-ruby-mock/invoice.paid__1.json",
    "stripe-ruby-mock/invoice.payment_failed__1.json",
    "stripe-ruby-mock/invoice.payment_succeeded__1.json",
    "stripe-java/invoice.payment_succeeded__1.json",
    "stripe-java/invoice.payment_failed__1.json",
]


def derive_fixture(relative: str) -> DerivedEvent:
    return derive(envelope_for(fixture_bytes(relative)))


def wrap(obj: dict[str, Any], event_type: str, created: int, livemode: bool = False) -> bytes:
    """An event envelope around a bare object or an event `data` fragment (pay-rails, stripe-openapi)."""
    data = obj if "object" in obj and isinstance(obj["object"], dict) else {"object": obj}
    event = {
        "id": f"evt_wrapped_{event_type}_{created}",
        "object": "event",
        "type": event_type,
        "created": created,
        "livemode": livemode,
        "data": data,
    }
    return json.dumps(event).encode()


def derive_wrapped(relative: str, event_type: str, created: int, livemode: bool = False) -> DerivedEvent:
    obj = json.loads(fixture_bytes(relative))
    return derive(envelope_for(wrap(obj, event_type, created, livemode)))


@pytest.mark.parametrize(("relative", "expected"), SNAPSHOTS)
def test_subscription_fixture_snapshots(relative: str, expected: list[tuple[str, str, str, int]]) -> None:
    derived = derive_fixture(relative)
    assert derived.event.state is EventState.PROCESSED, derived.event.error
    got = [(s.subscription_key, s.status, s.currency, s.mrr_minor) for s in derived.subscription_snapshots]
    assert got == [(f"stripe:subscription:{k}", st, c, m) for k, st, c, m in expected]
    (snapshot,) = derived.subscription_snapshots
    assert snapshot.entity == "acme" and snapshot.livemode is False
    assert (
        snapshot.snapshot_id == f"{snapshot.subscription_key}@{snapshot.version}:{snapshot.source_event_id}"
    )
    assert derived.revenue == [] and derived.orders == []


@pytest.mark.parametrize("relative", MIXED_CURRENCY)
def test_mixed_currency_subscriptions_are_recorded_not_counted(relative: str) -> None:
    derived = derive_fixture(relative)
    assert derived.event.state is EventState.IGNORED
    assert derived.subscription_snapshots == []
    assert "several currencies (eur, usd)" in (derived.event.error or "")


@pytest.mark.parametrize(
    ("relative", "invoice", "subscription", "status", "failed", "due", "paid", "currency"), INVOICES
)
def test_subscription_invoice_fixtures(
    relative: str,
    invoice: str,
    subscription: str,
    status: str,
    failed: bool,
    due: int,
    paid: int,
    currency: str,
) -> None:
    derived = derive_fixture(relative)
    assert derived.event.state is EventState.PROCESSED, derived.event.error
    (record,) = derived.subscription_invoices
    assert (record.invoice_key, record.subscription_key) == (
        f"stripe:invoice:{invoice}",
        f"stripe:subscription:{subscription}",
    )
    assert (record.status, record.payment_failed, record.amount_due, record.amount_paid, record.currency) == (
        status,
        failed,
        due,
        paid,
        currency,
    )
    assert derived.subscription_snapshots == []


@pytest.mark.parametrize("relative", ONE_OFF_INVOICES)
def test_one_off_invoices_are_not_subscription_state(relative: str) -> None:
    derived = derive_fixture(relative)
    assert derived.subscription_invoices == [] and derived.subscription_snapshots == []
    assert derived.event.state is not EventState.FAILED


def test_invoice_payment_paid_2025_shape() -> None:
    derived = derive_fixture("stripe-sync-engine/invoice_payment.paid__1.json")
    assert derived.event.state is EventState.PROCESSED
    (payment,) = derived.invoice_payments
    assert payment.invoice_payment_key == "stripe:invoice_payment:inpay_1M3USa2eZvKYlo2CBjuwbq0N"
    assert payment.invoice_id == "in_103Q0w2eZvKYlo2C5PYwf6Wf"
    assert (payment.status, payment.amount_paid, payment.currency) == ("paid", 2000, "usd")
    assert (payment.payment_intent, payment.charge) == ("pi_103Q0w2eZvKYlo2C364X582Z", None)


def test_pay_rails_history_current_periods_on_items() -> None:
    """pay-rails data fragments: one subscription created (300 usd x 2 monthly, a price object with
    plan-style `amount`), then canceled; the update carries current_period_* only on its item."""
    created = derive_wrapped(
        "pay-rails/data_only/customer.subscription.created__1.json",
        "customer.subscription.created",
        1466783124,
    )
    updated = derive_wrapped(
        "pay-rails/data_only/customer.subscription.updated__1.json",
        "customer.subscription.updated",
        1487872069,
    )
    deleted = derive_wrapped(
        "pay-rails/data_only/customer.subscription.deleted__1.json",
        "customer.subscription.deleted",
        1487872070,
    )
    (first,) = created.subscription_snapshots
    (second,) = updated.subscription_snapshots
    (third,) = deleted.subscription_snapshots
    assert (first.subscription_key, first.status, first.mrr_minor) == (
        "stripe:subscription:sub_00000000000000",
        "active",
        600,
    )
    assert (second.status, second.mrr_minor) == ("canceled", 0)
    assert (
        second.current_period_start is not None and int(second.current_period_start.timestamp()) == 1486568724
    )
    assert second.current_period_end is not None and int(second.current_period_end.timestamp()) == 1488987924
    assert (third.status, third.mrr_minor) == ("canceled", 0)

    state, movements = replay_subscription([third, first, second, first])
    assert (state.status, state.mrr_minor, state.snapshot_count) == ("canceled", 0, 3)
    assert [(m.kind.value, m.amount_minor) for m in movements] == [("new", 600), ("churn", -600)]
    assert state.churned_at == second.occurred_at and state.first_active_at == first.occurred_at


def test_pay_rails_invoice_2025_parent_subscription_details() -> None:
    derived = derive_wrapped(
        "pay-rails/data_only/invoice.payment_failed__1.json",
        "invoice.payment_failed",
        1745433962,
        livemode=True,
    )
    (record,) = derived.subscription_invoices
    assert (record.invoice_key, record.subscription_key) == (
        "stripe:invoice:in_1234",
        "stripe:subscription:sub_1234",
    )
    assert (record.status, record.payment_failed, record.amount_due, record.amount_paid) == (
        "open",
        True,
        24900,
        0,
    )
    assert record.livemode is True and record.billing_reason == "subscription_cycle"


def test_pay_rails_one_off_invoice_object() -> None:
    derived = derive_wrapped("pay-rails/objects/invoice__1.json", "invoice.paid", 1744986363)
    assert derived.subscription_invoices == [] and derived.event.state is EventState.IGNORED


def test_openapi_subscription_current_shape() -> None:
    """stripe-openapi's current-API subscription: periods only on items, collection paused, and a
    transform_quantity that divides the quantity 1 by 1592560163 (rounded down: 0 billed)."""
    derived = derive_wrapped(
        "stripe-openapi/objects/subscription.json", "customer.subscription.updated", 1721954054
    )
    (snapshot,) = derived.subscription_snapshots
    assert (snapshot.subscription_id, snapshot.status, snapshot.currency, snapshot.mrr_minor) == (
        "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw",
        "active",
        "usd",
        0,
    )
    (item,) = snapshot.items
    assert (item.price_id, item.quantity, item.unit_amount, item.interval, item.counted) == (
        "price_1PgafmB7WZ01zgkW6dKueIc5",
        0,
        "2000",
        "month",
        True,
    )
    assert (
        snapshot.current_period_start is not None
        and int(snapshot.current_period_start.timestamp()) == 1896570518
    )


def test_openapi_invoice_and_invoice_payment_placeholders() -> None:
    invoice = derive_wrapped("stripe-openapi/objects/invoice.json", "invoice.paid", 1721954054)
    (record,) = invoice.subscription_invoices
    assert (record.subscription_key, record.status, record.amount_due, record.amount_paid) == (
        "stripe:subscription:subscription",
        "draft",
        1000,
        0,
    )
    # A placeholder payload ("currency": "currency"): fails with the reason, nothing derived.
    payment = derive_wrapped(
        "stripe-openapi/objects/invoice_payment.json", "invoice_payment.paid", 1721954054
    )
    assert payment.event.state is EventState.FAILED and payment.invoice_payments == []
    assert "currency" in (payment.event.error or "")


def test_trial_will_end_is_a_no_op() -> None:
    event = json.loads(fixture_bytes("stripe-ruby-mock/customer.subscription.created__1.json"))
    event["type"] = "customer.subscription.trial_will_end"
    derived = derive(envelope_for(json.dumps(event).encode()))
    assert derived.event.state is EventState.IGNORED and derived.subscription_snapshots == []


def test_every_subscription_and_invoice_fixture_is_covered() -> None:
    """A new fixture of these families must get an expectation here."""
    covered = (
        {r for r, _ in SNAPSHOTS} | set(MIXED_CURRENCY) | {r for r, *_ in INVOICES} | set(ONE_OFF_INVOICES)
    )
    covered |= {
        "stripe-sync-engine/invoice_payment.paid__1.json",
        "pay-rails/data_only/customer.subscription.created__1.json",
        "pay-rails/data_only/customer.subscription.updated__1.json",
        "pay-rails/data_only/customer.subscription.deleted__1.json",
        "pay-rails/data_only/invoice.payment_failed__1.json",
        "pay-rails/objects/invoice__1.json",
        "stripe-openapi/objects/subscription.json",
        "stripe-openapi/objects/invoice.json",
        "stripe-openapi/objects/invoice_payment.json",
    }
    present = {
        str(p.relative_to(STRIPE))
        for p in STRIPE.rglob("*.json")
        if p.name.startswith(("customer.subscription", "invoice")) or p.name in ("subscription.json",)
    }
    assert present <= covered, sorted(present - covered)
