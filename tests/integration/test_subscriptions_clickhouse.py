"""ClickHouse (chdb): snapshots written by the real sink class in random batches with duplicates;
the `mrr_movements` view and the current-MRR reads equal the pure rule the Postgres sink runs
(schemas.subscriptions.replay_subscription)."""

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.revenue.derive import derive
from schemas.subscriptions import SubscriptionSnapshot, replay_subscription
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.subscriptions import (
    SubscriptionSnapshotFacts,
    current_mrr,
    mrr_movements,
    recurring_totals,
)
from tests.subscription_histories import deliveries, event_body, portfolios
from tests.unit.test_stripe_derive import envelope_for

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    path: Path = tmp_path_factory.mktemp("chdb")
    client = ClickHouse(f"chdb://{path}")
    try:
        yield client
    finally:
        client.close()


def expected(
    snapshots: list[SubscriptionSnapshot],
) -> tuple[dict[bool, list[tuple[Any, ...]]], dict[bool, dict[str, Any]]]:
    history: dict[str, list[SubscriptionSnapshot]] = defaultdict(list)
    for s in snapshots:
        history[s.subscription_key].append(s)
    moves: dict[bool, list[tuple[Any, ...]]] = {False: [], True: []}
    current: dict[bool, dict[str, Any]] = {False: {}, True: {}}
    for snaps in history.values():
        state, movements = replay_subscription(snaps)
        for m in movements:
            moves[m.livemode].append(
                (
                    m.subscription_key,
                    m.entity,
                    m.currency,
                    m.kind.value,
                    m.amount_minor,
                    m.mrr_before,
                    m.mrr_after,
                    m.version,
                    m.source_event_id,
                )
            )
        if state.mrr_minor > 0:
            per_entity = current[state.livemode].setdefault(state.entity, {})
            totals = per_entity.setdefault(state.currency, {"mrr": 0, "arr": 0, "customers": set()})
            totals["mrr"] += state.mrr_minor
            totals["arr"] += state.arr_minor
            totals["customers"].add(state.customer_id or state.subscription_key)
    shaped = {
        live: {
            entity: {
                c: {"mrr": t["mrr"], "arr": t["arr"], "active_customers": len(t["customers"])}
                for c, t in per.items()
            }
            for entity, per in by_entity.items()
        }
        for live, by_entity in current.items()
    }
    return moves, shaped


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_clickhouse_movements_equal_the_pure_rule(clickhouse: ClickHouse, data: st.DataObject) -> None:
    subs = data.draw(portfolios())
    entity_of = {state.event_id: sub.entity for sub in subs for state in sub.states}
    bodies = deliveries(data.draw, [event_body(sub, state) for sub in subs for state in sub.states])
    derived = [derive(envelope_for(b, entity=entity_of[json.loads(b)["id"]])) for b in bodies]
    clickhouse.run(lambda c: c.command("TRUNCATE TABLE subscription_snapshots"))
    sink = SubscriptionSnapshotFacts(clickhouse)
    cut = data.draw(st.integers(0, len(derived)))
    for batch in (derived[:cut], derived[cut:]):  # two inserts: two parts, duplicates across them
        for d in batch:
            sink.add(d)
        asyncio.run(sink.flush())

    snapshots = [s for d in derived for s in d.subscription_snapshots]
    want_moves, want_current = expected(snapshots)
    for livemode in (False, True):
        got = [
            (
                m["subscription_key"],
                m["entity"],
                m["currency"],
                m["kind"],
                m["amount_minor"],
                m["mrr_before"],
                m["mrr_after"],
                m["version"],
                m["source_event_id"],
            )
            for m in mrr_movements(clickhouse, livemode)
        ]
        assert sorted(got) == sorted(want_moves[livemode])
        assert current_mrr(clickhouse, livemode) == want_current[livemode]
        per_currency: dict[str, dict[str, int]] = {}
        for per in want_current[livemode].values():
            for currency, t in per.items():
                into = per_currency.setdefault(currency, {"mrr": 0, "arr": 0, "active_customers": 0})
                into["mrr"] += t["mrr"]
                into["arr"] += t["arr"]
        got_totals = recurring_totals(clickhouse, livemode)
        assert {c: (t["mrr"], t["arr"]) for c, t in got_totals.items()} == {
            c: (t["mrr"], t["arr"]) for c, t in per_currency.items()
        }
