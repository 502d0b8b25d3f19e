"""The documented MRR convention (processors/subscriptions/mrr.py, README "Subscriptions and MRR"),
one rule per test, on hand-built subscription payloads in the current (2025) and older shapes."""

import json
from typing import Any

import pytest

from processors.revenue.derive import derive
from schemas.revenue import EventState
from tests.unit.test_stripe_derive import envelope_for


def price(
    amount: int | str | float | None, interval: str = "month", count: int = 1, **extra: Any
) -> dict[str, Any]:
    return {
        "id": "price_1",
        "object": "price",
        "currency": "usd",
        "unit_amount": amount if not isinstance(amount, str) else None,
        "unit_amount_decimal": amount if isinstance(amount, str) else None,
        "billing_scheme": "per_unit",
        "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
        **extra,
    }


def subscription(
    *items: tuple[dict[str, Any], int | None], status: str = "active", **extra: Any
) -> dict[str, Any]:
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "currency": "usd",
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{i}",
                    "price": p,
                    "quantity": q,
                    "current_period_start": 1,
                    "current_period_end": 2,
                }
                for i, (p, q) in enumerate(items)
            ],
        },
        **extra,
    }


def mrr(sub: dict[str, Any], event_type: str = "customer.subscription.updated") -> int:
    event = {
        "id": "evt_1",
        "object": "event",
        "type": event_type,
        "created": 1700000000,
        "data": {"object": sub},
    }
    derived = derive(envelope_for(json.dumps(event).encode()))
    assert derived.event.state is EventState.PROCESSED, derived.event.error
    (snapshot,) = derived.subscription_snapshots
    return snapshot.mrr_minor


def failure(sub: dict[str, Any]) -> str:
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "customer.subscription.created",
        "created": 1,
        "data": {"object": sub},
    }
    derived = derive(envelope_for(json.dumps(event).encode()))
    assert derived.event.state is EventState.FAILED and derived.subscription_snapshots == []
    return derived.event.error or ""


@pytest.mark.parametrize(
    ("interval", "count", "amount", "expected"),
    [
        ("month", 1, 1000, 1000),
        ("month", 3, 3000, 1000),  # quarterly
        ("year", 1, 12000, 1000),
        ("year", 1, 1000, 83),  # 83.33 -> 83
        ("year", 2, 24000, 1000),
        ("week", 1, 1000, 4333),  # 1000 x 52 / 12 = 4333.33
        ("week", 2, 1200, 2600),  # 1200 x 52 / 24
        ("day", 1, 100, 3042),  # 100 x 365 / 12 = 3041.67
    ],
)
def test_interval_normalization(interval: str, count: int, amount: int, expected: int) -> None:
    assert mrr(subscription((price(amount, interval, count), 1))) == expected


def test_rounding_is_once_per_subscription_half_up() -> None:
    # Each item alone is 0.5 a month; rounded per item that would be 0 + 0 or 1 + 1, exactly it is 1.
    assert mrr(subscription((price(6, "year"), 1), (price(6, "year"), 1))) == 1
    assert mrr(subscription((price(18, "year"), 1))) == 2  # 1.5 -> 2 (half up)


def test_quantity_and_decimal_unit_amounts() -> None:
    assert mrr(subscription((price(250), 4))) == 1000
    assert mrr(subscription((price("0.5"), 3))) == 2  # 1.5 minor units -> 2


@pytest.mark.parametrize(
    ("status", "counts"),
    [
        ("active", True),
        ("past_due", True),
        ("trialing", False),
        ("incomplete", False),
        ("incomplete_expired", False),
        ("unpaid", False),
        ("paused", False),
        ("canceled", False),
    ],
)
def test_only_active_and_past_due_carry_mrr(status: str, counts: bool) -> None:
    assert mrr(subscription((price(1000), 1), status=status)) == (1000 if counts else 0)


def test_deleted_event_has_no_mrr_even_if_the_object_says_active() -> None:
    assert mrr(subscription((price(1000), 1)), "customer.subscription.deleted") == 0


def test_paused_collection_has_no_mrr() -> None:
    sub = subscription((price(1000), 1), pause_collection={"behavior": "void", "resumes_at": None})
    assert mrr(sub) == 0


def test_metered_and_meter_backed_items_are_excluded() -> None:
    metered = price(1000)
    metered["recurring"]["usage_type"] = "metered"
    meter = price(1000)
    meter["recurring"]["meter"] = "mtr_1"
    assert mrr(subscription((price(500), 1), (metered, None), (meter, None))) == 500


def test_free_items_add_nothing() -> None:
    assert mrr(subscription((price(0), 5), (price(700), 1))) == 700


def coupon(duration: str, **off: Any) -> dict[str, Any]:
    return {
        "id": "di_1",
        "object": "discount",
        "coupon": {"id": "co_1", "duration": duration, **off},
        "end": None,
    }


def test_forever_percent_discount_reduces_mrr() -> None:
    assert mrr(subscription((price(1000), 1), discount=coupon("forever", percent_off=25))) == 750
    assert mrr(subscription((price(1000), 1), discount=coupon("forever", percent_off=12.5))) == 875


def test_forever_amount_off_is_per_invoice_normalized_by_the_billing_interval() -> None:
    yearly = subscription(
        (price(12000, "year"), 1), discount=coupon("forever", amount_off=1200, currency="usd")
    )
    assert mrr(yearly) == 900  # (12000 - 1200) / 12
    monthly = subscription((price(1000), 1), discount=coupon("forever", amount_off=5000, currency="usd"))
    assert mrr(monthly) == 0  # never below zero


@pytest.mark.parametrize("duration", ["once", "repeating"])
def test_once_and_repeating_discounts_do_not_change_mrr(duration: str) -> None:
    assert mrr(subscription((price(1000), 1), discount=coupon(duration, percent_off=50))) == 1000


def test_2025_discounts_list_with_source_coupon_and_dedupe() -> None:
    discount = {
        "id": "di_1",
        "object": "discount",
        "source": {"coupon": {"id": "co_1", "duration": "forever", "percent_off": 10}},
    }
    # The same discount as the legacy `discount` field and in the `discounts` list counts once;
    # ids only (not expanded) cannot be valued and are ignored.
    sub = subscription((price(1000), 1), discount=discount, discounts=[discount, "di_2"])
    assert mrr(sub) == 900


def test_legacy_single_plan_with_quantity() -> None:
    sub = {
        "object": "subscription",
        "customer": "cus_9",
        "status": "active",
        "quantity": 3,
        "plan": {"id": "gold", "amount": 2000, "currency": "usd", "interval": "month"},
    }
    assert mrr(sub) == 6000


def test_transform_quantity_rounds_as_stripe_does() -> None:
    up = price(1000, transform_quantity={"divide_by": 10, "round": "up"})
    down = price(1000, transform_quantity={"divide_by": 10, "round": "down"})
    assert mrr(subscription((up, 25))) == 3000
    assert mrr(subscription((down, 25))) == 2000


def tiered(mode: str) -> dict[str, Any]:
    return price(
        None,
        billing_scheme="tiered",
        tiers_mode=mode,
        tiers=[
            {"up_to": 5, "unit_amount": 1000, "flat_amount": None},
            {"up_to": None, "unit_amount": 500, "flat_amount": 100},
        ],
    )


def test_tiered_prices() -> None:
    assert mrr(subscription((tiered("volume"), 8))) == 8 * 500 + 100
    assert mrr(subscription((tiered("graduated"), 8))) == 5 * 1000 + 3 * 500 + 100
    assert mrr(subscription((tiered("volume"), 3))) == 3000


def test_unpriceable_payloads_fail_with_the_reason() -> None:
    no_tiers = price(None, billing_scheme="tiered")
    assert "tiers" in failure(subscription((no_tiers, 1)))
    assert "unit_amount" in failure(subscription((price(12.5), 1)))  # floats are never money
    assert "interval" in failure(subscription((price(100, "fortnight"), 1)))
    assert "status" in failure({k: v for k, v in subscription((price(1), 1)).items() if k != "status"})
