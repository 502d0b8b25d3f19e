"""Property: any delivery order of the same subscription events, with any duplicates, yields the
same subscription state and MRR movements, equal to an independent computation from the
generated histories (tests/subscription_histories.py). Runs the real derivation (derive()) and the
real replay rule the sinks use (schemas.subscriptions.replay_subscription)."""

import json
import zlib
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.revenue.derive import derive
from schemas.revenue import EventState
from schemas.subscriptions import MrrMovement, SubscriptionSnapshot, SubscriptionState, replay_subscription
from tests.subscription_histories import Subscription, deliveries, event_body, expected_history, portfolios
from tests.unit.test_stripe_derive import envelope_for


def apply(
    bodies: list[bytes], entity_of: dict[str, str]
) -> tuple[dict[str, SubscriptionState], list[MrrMovement]]:
    """What the Postgres sink ends with after these deliveries: every snapshot kept once, each
    subscription replayed from its whole history (batch boundaries cannot matter: the replay reads
    the full set)."""
    snapshots: dict[str, SubscriptionSnapshot] = {}
    for body in bodies:
        event_id = json.loads(body)["id"]
        derived = derive(envelope_for(body, entity=entity_of[event_id]))
        assert derived.event.state is EventState.PROCESSED, derived.event.error
        for snapshot in derived.subscription_snapshots:
            snapshots[snapshot.snapshot_id] = snapshot
    history: dict[str, list[SubscriptionSnapshot]] = defaultdict(list)
    for snapshot in snapshots.values():
        history[snapshot.subscription_key].append(snapshot)
    states, movements = {}, []
    for key, snaps in history.items():
        state, moves = replay_subscription(snaps)
        states[key] = state
        movements.extend(moves)
    movements.sort(key=lambda m: m.movement_id)
    return states, movements


def summary(state: SubscriptionState) -> tuple[Any, ...]:
    return (
        state.status,
        state.currency,
        state.mrr_minor,
        state.arr_minor,
        state.entity,
        state.livemode,
        state.customer_id,
        state.snapshot_count,
    )


def movement_tuple(m: MrrMovement) -> tuple[Any, ...]:
    return (
        m.kind.value,
        m.currency,
        m.amount_minor,
        m.mrr_before,
        m.mrr_after,
        int(m.occurred_at.timestamp()),
        m.source_event_id,
    )


def totals(states: dict[str, SubscriptionState]) -> dict[tuple[str, bool, str], tuple[int, int]]:
    """(entity, livemode, currency) -> (MRR, active customers), as the mrr_totals view sums it."""
    mrr: dict[tuple[str, bool, str], int] = defaultdict(int)
    customers: dict[tuple[str, bool, str], set[str]] = defaultdict(set)
    for state in states.values():
        if state.mrr_minor > 0:
            group = (state.entity, state.livemode, state.currency)
            mrr[group] += state.mrr_minor
            customers[group].add(state.customer_id or state.subscription_key)
    return {group: (mrr[group], len(customers[group])) for group in mrr}


def check(subs: list[Subscription], bodies: list[bytes], shuffled: list[bytes]) -> None:
    entity_of = {state.event_id: sub.entity for sub in subs for state in sub.states}
    states, movements = apply(bodies, entity_of)
    states_again, movements_again = apply(shuffled, entity_of)
    assert states == states_again
    assert movements == movements_again

    expected_totals: dict[tuple[str, bool, str], list[int]] = {}
    for sub in subs:
        key = f"stripe:subscription:{sub.subscription_id}"
        final, expected_moves = expected_history(sub)
        assert summary(states[key]) == final
        got = sorted((movement_tuple(m) for m in movements if m.subscription_key == key), key=lambda t: t[5:])
        want = sorted(expected_moves, key=lambda t: t[5:])
        assert sorted(got) == sorted(want)
        # Same time order too: movements follow (created, tie-break, id).
        ordered = sorted(
            (m for m in movements if m.subscription_key == key),
            key=lambda m: (m.version, m.source_event_id),
        )
        assert [m.source_event_id for m in ordered] == [
            t[6] for t in sorted(expected_moves, key=lambda t: (t[5], zlib.crc32(t[6].encode()) % 1000, t[6]))
        ]
        _, _, mrr, _, entity, livemode, customer, _ = final
        if mrr > 0:
            group = expected_totals.setdefault((entity, livemode, sub.currency), [0, 0])
            group[0] += mrr
    for group, (mrr, _) in totals(states).items():
        assert expected_totals[group][0] == mrr
    assert set(totals(states)) == set(expected_totals)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_order_with_duplicates_gives_the_same_state_and_movements(data: st.DataObject) -> None:
    subs = data.draw(portfolios())
    bodies = [event_body(sub, state) for sub in subs for state in sub.states]
    shuffled = deliveries(data.draw, bodies)
    check(subs, bodies, shuffled)


def test_movement_kinds_on_a_known_history() -> None:
    """new -> expansion -> contraction -> churn -> reactivation, delivered newest first."""
    base = datetime(2024, 1, 1, tzinfo=UTC)

    def snap(n: int, mrr: int) -> SubscriptionSnapshot:
        return SubscriptionSnapshot(
            snapshot_id=f"stripe:subscription:sub_k@{n}:evt_{n}",
            subscription_key="stripe:subscription:sub_k",
            subscription_id="sub_k",
            source="stripe",
            entity="acme",
            livemode=True,
            customer_id="cus_k",
            status="active" if mrr else "canceled",
            currency="eur",
            mrr_minor=mrr,
            occurred_at=base.replace(day=n),
            version=n,
            source_event_id=f"evt_{n}",
            source_event_type="customer.subscription.updated",
        )

    history = [snap(1, 1000), snap(2, 1500), snap(3, 1500), snap(4, 800), snap(5, 0), snap(6, 900)]
    state, movements = replay_subscription(reversed(history + history[:2]))
    assert [(m.kind.value, m.amount_minor, m.mrr_after) for m in movements] == [
        ("new", 1000, 1000),
        ("expansion", 500, 1500),
        ("contraction", -700, 800),
        ("churn", -800, 0),
        ("reactivation", 900, 900),
    ]
    assert (state.mrr_minor, state.arr_minor, state.snapshot_count, state.churned_at) == (900, 10800, 6, None)
    assert state.first_active_at == base.replace(day=1)


def test_a_currency_switch_churns_the_old_currency_and_starts_the_new() -> None:
    """Stripe cannot change a subscription's currency; if a payload claims it, nothing is mixed."""
    base = datetime(2024, 1, 1, tzinfo=UTC)
    common: dict[str, Any] = {
        "subscription_key": "stripe:subscription:sub_c",
        "subscription_id": "sub_c",
        "source": "stripe",
        "entity": "acme",
        "livemode": False,
        "customer_id": "cus_c",
        "status": "active",
        "source_event_type": "customer.subscription.updated",
    }
    usd = SubscriptionSnapshot(
        snapshot_id="a",
        currency="usd",
        mrr_minor=500,
        occurred_at=base,
        version=1,
        source_event_id="e1",
        **common,
    )
    eur = SubscriptionSnapshot(
        snapshot_id="b",
        currency="eur",
        mrr_minor=400,
        occurred_at=base,
        version=2,
        source_event_id="e2",
        **common,
    )
    _, movements = replay_subscription([eur, usd])
    assert [(m.kind.value, m.currency, m.amount_minor) for m in movements] == [
        ("new", "usd", 500),
        ("churn", "usd", -500),
        ("reactivation", "eur", 400),
    ]
