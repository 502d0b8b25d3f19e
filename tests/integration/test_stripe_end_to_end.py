"""Published Stripe payloads, signed and posted over HTTP to a running pipeline on real Kafka,
PostgreSQL and chdb, each delivered twice in shuffled order: the totals equal the fixtures' amounts."""

import json
import random
import time

import pytest

from tests.conftest import Pipeline
from tests.stripe_fixtures import fixture_bytes

pytestmark = [pytest.mark.integration]

# Several published fixtures reuse one event id (evt_00000000000000 ...): each gets a unique
# suffix, replaced in the raw bytes so everything else stays byte-exact.
CURATED = [
    "stripe-ruby-mock/charge.succeeded__1.json",  # pi_0*24, 2000 usd
    "stripe-ruby-mock/payment_intent.succeeded__1.json",  # the same payment (pi_0*24): counted once
    "stripe-ruby-mock/charge.refunded__1.json",  # refund re_0*24: 100 usd
    "stripe-ruby-mock/payment_intent.succeeded__2.json",  # pi_0*14: 900 eur
    "stripe-sync-engine/charge.succeeded__1.json",  # pi_3KtQ...: 3000 usd
    "stripe-sync-engine/charge.refunded__1.json",  # refund re_3Kl36...: 2500 usd
    "stripe_event/charge.succeeded__1.json",  # 2012 charge ch_0*14: 3279 usd
    "stripe-sync-engine/checkout.session.completed__1.json",  # LIVE: 999 eur, and an order
    "stripe-sync-engine/payment_intent.succeeded__1.json",  # INCONSISTENT (requires_payment_method): 0
    "stripe-ruby-mock/checkout.session.completed__3.json",  # setup mode: 0
    "stripe-ruby-mock/charge.refunded__4.json",  # INCONSISTENT (refunded, amount_refunded 0): 0
    "stripe-ruby-mock/customer.subscription.created__1.json",  # no revenue; a subscription snapshot
]
# Read off the fixtures by hand (see the comments above).
EXPECTED_TEST = {
    "eur": {"gross": 900, "refunds": 0, "net": 900},
    "usd": {"gross": 2000 + 3000 + 3279, "refunds": 100 + 2500, "net": 2000 + 3000 + 3279 - 100 - 2500},
}
EXPECTED_LIVE = {"eur": {"gross": 999, "refunds": 0, "net": 999}}


def unique_bodies() -> list[bytes]:
    bodies = []
    for index, name in enumerate(CURATED):
        raw = fixture_bytes(name)
        event_id = json.loads(raw)["id"]
        bodies.append(raw.replace(event_id.encode(), f"{event_id}_{index}".encode()))
    return bodies


def wait_until(predicate, timeout_s: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.3)


def test_fixtures_twice_shuffled_give_exact_totals(pipeline: Pipeline) -> None:
    assert pipeline.http.get("/ready").json() == {"status": "ready"}  # the broker answers
    deliveries = unique_bodies() * 2
    random.Random(7).shuffle(deliveries)
    for body in deliveries:
        response = pipeline.post_stripe(body)
        assert response.status_code == 200, response.text
        assert response.json()["received"] is True

    pipeline.wait_for_totals(EXPECTED_TEST, livemode=False)
    pipeline.wait_for_totals(EXPECTED_LIVE, livemode=True)
    assert pipeline.raw_message_count() == len(deliveries)  # every 2xx is in the log

    wait_until(lambda: pipeline.sql("SELECT count(*) FROM webhook_events")[0][0] == len(CURATED))
    states = dict(pipeline.sql("SELECT state, count(*) FROM webhook_events GROUP BY state"))
    assert states == {"processed": 9, "ignored": 3}
    wait_until(lambda: pipeline.sql("SELECT count(*) FROM revenue_ledger")[0][0] == 7)
    ledger = pipeline.sql(
        "SELECT livemode, currency, kind, sum(amount_minor)::bigint FROM revenue_ledger WHERE counted "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    assert ledger == [
        (False, "eur", "payment", 900),
        (False, "usd", "payment", 8279),
        (False, "usd", "refund", 2600),
        (True, "eur", "payment", 999),
    ]
    assert pipeline.sql("SELECT amount_minor, currency, status, livemode FROM orders") == [
        (999, "eur", "paid", True)
    ]
