"""Generated subscription histories for the property tests, and an independent expectation.

A history is a list of abstract subscription states (plan items, quantity, interval, status,
discount) rendered as real Stripe event payloads in one of three API shapes (2012 single plan,
2020 items with plans and prices, 2025 items with current_period_* and `discounts`). The
expectation (MRR per state, final state, movements) is computed here from the abstract states,
not from the payloads, with the convention written out again in its simplest form.
"""

import json
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

MONTHS = {"month": Fraction(1), "year": Fraction(12), "week": Fraction(12, 52), "day": Fraction(12, 365)}
COUNTED = {"active", "past_due"}


@dataclass(frozen=True)
class Item:
    amount: int
    quantity: int
    interval: str
    interval_count: int
    metered: bool


@dataclass(frozen=True)
class Discount:
    duration: str
    percent_off: int | None
    amount_off: int | None


@dataclass(frozen=True)
class State:
    event_type: str
    status: str
    items: tuple[Item, ...]
    discount: Discount | None
    created: int
    event_id: str


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    customer_id: str
    entity: str
    livemode: bool
    currency: str
    shape: str
    states: tuple[State, ...]


def expected_mrr(state: State) -> int:
    """The convention, restated: exact monthly sum, forever discounts, rounded once half up."""
    if state.status not in COUNTED or state.event_type == "customer.subscription.deleted":
        return 0
    counted = [i for i in state.items if not i.metered]
    total = sum(
        (Fraction(i.amount * i.quantity) / (MONTHS[i.interval] * i.interval_count) for i in counted),
        Fraction(0),
    )
    d = state.discount
    if d is not None and d.duration == "forever":
        if d.percent_off is not None:
            total = total * (100 - d.percent_off) / 100
        if d.amount_off is not None and counted:
            total -= Fraction(d.amount_off) / (MONTHS[counted[0].interval] * counted[0].interval_count)
    total = max(total, Fraction(0))
    return int(total + Fraction(1, 2))


def order_key(state: State) -> tuple[int, int, str]:
    """Event time, then the documented tie-break (crc32 of the event id mod 1000), then the id."""
    return (state.created, zlib.crc32(state.event_id.encode()) % 1000, state.event_id)


def expected_history(sub: Subscription) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """(final state summary, movements) of one subscription, from its abstract states."""
    ordered = sorted(set(sub.states), key=order_key)
    movements = []
    before, had = 0, False
    for state in ordered:
        after = expected_mrr(state)
        if after != before:
            if before == 0:
                kind = "reactivation" if had else "new"
            elif after == 0:
                kind = "churn"
            else:
                kind = "expansion" if after > before else "contraction"
            movements.append(
                (kind, sub.currency, after - before, before, after, state.created, state.event_id)
            )
        had = had or after > 0
        before = after
    last = ordered[-1]
    status = "canceled" if last.event_type == "customer.subscription.deleted" else last.status
    final = (
        status,
        sub.currency,
        before,
        12 * before,
        sub.entity,
        sub.livemode,
        sub.customer_id,
        len(ordered),
    )
    return final, movements


def _price(sub: Subscription, index: int, item: Item) -> dict[str, Any]:
    usage = "metered" if item.metered else "licensed"
    plan = {
        "id": f"plan_{sub.subscription_id}_{index}",
        "object": "plan",
        "amount": item.amount,
        "currency": sub.currency,
        "interval": item.interval,
        "interval_count": item.interval_count,
        "usage_type": usage,
    }
    if sub.shape == "2012":
        return {"plan": plan}
    price = {
        "id": f"price_{sub.subscription_id}_{index}",
        "object": "price",
        "currency": sub.currency,
        "unit_amount": item.amount,
        "unit_amount_decimal": str(item.amount),
        "billing_scheme": "per_unit",
        "recurring": {"interval": item.interval, "interval_count": item.interval_count, "usage_type": usage},
    }
    return {"plan": plan, "price": price}


def _discount(d: Discount | None, currency: str, shape: str) -> dict[str, Any]:
    if d is None:
        return {"discount": None} if shape != "2025" else {"discounts": []}
    coupon = {
        "id": f"co_{d.duration}",
        "object": "coupon",
        "duration": d.duration,
        "percent_off": d.percent_off,
        "amount_off": d.amount_off,
        "currency": currency if d.amount_off is not None else None,
    }
    if shape == "2025":
        return {
            "discounts": [
                {"id": "di_1", "object": "discount", "source": {"coupon": coupon, "type": "coupon"}}
            ]
        }
    return {"discount": {"id": "di_1", "object": "discount", "coupon": coupon, "end": None}}


def event_body(sub: Subscription, state: State) -> bytes:
    """The Stripe event of one state, in the subscription's API shape."""
    obj: dict[str, Any] = {"object": "subscription", "customer": sub.customer_id, "status": state.status}
    if sub.shape == "2012":
        (item,) = state.items  # one plan per subscription before 2014
        obj.update(_price(sub, 0, item), quantity=item.quantity)
        obj.update(current_period_start=state.created, current_period_end=state.created + 2592000)
    else:
        obj["id"] = sub.subscription_id
        data = []
        for index, item in enumerate(state.items):
            entry: dict[str, Any] = {"id": f"si_{sub.subscription_id}_{index}", "object": "subscription_item"}
            entry.update(_price(sub, index, item))
            if not item.metered:
                entry["quantity"] = item.quantity
            if sub.shape == "2025":
                entry.update(current_period_start=state.created, current_period_end=state.created + 2592000)
            data.append(entry)
        obj["items"] = {"object": "list", "data": data}
        obj["currency"] = sub.currency
        if sub.shape == "2020":
            obj.update(current_period_start=state.created, current_period_end=state.created + 2592000)
    obj.update(_discount(state.discount, sub.currency, sub.shape))
    event = {
        "id": state.event_id,
        "object": "event",
        "type": state.event_type,
        "created": state.created,
        "livemode": sub.livemode,
        "data": {"object": obj},
    }
    if sub.shape != "2012":
        event["api_version"] = "2025-03-31.basil" if sub.shape == "2025" else "2020-08-27"
    return json.dumps(event).encode()


# -- strategies -----------------------------------------------------------------------------

items_st = st.builds(
    Item,
    amount=st.sampled_from([0, 1, 99, 500, 999, 1200, 4999, 120000]),
    quantity=st.integers(0, 5),
    interval=st.sampled_from(["month", "year", "week", "day"]),
    interval_count=st.integers(1, 3),
    metered=st.booleans(),
)
discount_st = st.one_of(
    st.none(),
    st.builds(
        Discount,
        duration=st.sampled_from(["forever", "once", "repeating"]),
        percent_off=st.sampled_from([10, 25, 50, 100]),
        amount_off=st.none(),
    ),
    st.builds(
        Discount,
        duration=st.sampled_from(["forever", "once"]),
        percent_off=st.none(),
        amount_off=st.sampled_from([100, 500, 100000]),
    ),
)
STATUSES = [
    "active",
    "active",
    "active",
    "past_due",
    "trialing",
    "unpaid",
    "incomplete",
    "paused",
    "canceled",
]


@st.composite
def subscriptions(draw: st.DrawFn, index: int) -> Subscription:
    shape = draw(st.sampled_from(["2012", "2020", "2025"]))
    entity = draw(st.sampled_from(["acme", "globex"]))
    livemode = draw(st.booleans())
    currency = draw(st.sampled_from(["usd", "eur", "jpy"]))
    customer = f"cus_{draw(st.integers(0, 3))}"
    sub_id = f"legacy:{customer}" if shape == "2012" else f"sub_{index}"
    n = draw(st.integers(1, 6))
    states = []
    for k in range(n):
        if shape == "2012":
            items: tuple[Item, ...] = (draw(items_st.filter(lambda i: not i.metered)),)
        else:
            items = tuple(draw(st.lists(items_st, min_size=1, max_size=3)))
        status = draw(st.sampled_from(STATUSES))
        if k == 0:
            event_type = "customer.subscription.created"
        elif status == "canceled" and draw(st.booleans()):
            event_type = "customer.subscription.deleted"
        elif status == "paused":
            event_type = "customer.subscription.paused"
        elif k > 0 and states[-1].status == "paused" and status == "active":
            event_type = "customer.subscription.resumed"
        else:
            event_type = "customer.subscription.updated"
        created = 1_700_000_000 + draw(st.integers(0, 40))  # small range: same-second ties happen
        states.append(
            State(
                event_type=event_type,
                status=status,
                items=items,
                discount=draw(discount_st),
                created=created,
                event_id=f"evt_{index}_{k}",
            )
        )
    return Subscription(sub_id, customer, entity, livemode, currency, shape, tuple(states))


@st.composite
def portfolios(draw: st.DrawFn) -> list[Subscription]:
    """1-4 subscriptions; 2012-shape ones are keyed by customer, so keep those customers distinct."""
    subs: list[Subscription] = []
    for index in range(draw(st.integers(1, 4))):
        sub = draw(subscriptions(index))
        if any(s.subscription_id == sub.subscription_id for s in subs):
            continue
        subs.append(sub)
    return subs


def deliveries(draw: st.DrawFn, bodies: list[bytes]) -> list[bytes]:
    """A permutation of the bodies with random duplicates."""
    duplicated = bodies + draw(st.lists(st.sampled_from(bodies), max_size=len(bodies)))
    return list(draw(st.permutations(duplicated)))
