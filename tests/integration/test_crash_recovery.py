"""Crash recovery: a generated history of ~1,500 Stripe events (plus duplicates, shuffled) is
posted while each service in turn is SIGKILLed and restarted. Nothing may be lost and nothing
counted twice: the query API's totals, the Postgres ledger and the webhook event log all equal
sums computed independently here from the generated history."""

import copy
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_SECRET, Pipeline
from tests.stripe_fixtures import fixture_event, stripe_signature

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20240601
PAYMENTS = 1250
REFUND_SHARE = 0.2
DUPLICATE_SHARE = 0.1
CURRENCIES = ("usd", "eur", "jpy")
BASE_CREATED = 1_700_000_000
PAYMENT_TEMPLATE = "stripe-ruby-mock/payment_intent.succeeded__1.json"
REFUND_TEMPLATE = "stripe-ruby-mock/charge.refunded__1.json"
DELIVERY_DEADLINE_S = 120


@dataclass
class History:
    events: list[bytes]
    payments: int
    refunds: int
    expected: dict[str, dict[str, int]]


def payment_event(template: dict[str, Any], i: int, amount: int, currency: str) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event.update(id=f"evt_gen_p{i}", created=BASE_CREATED + i, livemode=False)
    intent = event["data"]["object"]
    intent.update(
        id=f"pi_gen_{i}", amount=amount, amount_received=amount, currency=currency, status="succeeded"
    )
    intent["livemode"] = False
    for charge in intent.get("charges", {}).get("data", []):
        charge.update(
            id=f"ch_gen_{i}",
            amount=amount,
            amount_captured=amount,
            currency=currency,
            payment_intent=f"pi_gen_{i}",
        )
    return event


def refund_event(
    template: dict[str, Any], i: int, paid: int, refunded: int, currency: str, created: int
) -> dict[str, Any]:
    event = copy.deepcopy(template)
    event.update(id=f"evt_gen_r{i}", created=created, livemode=False)
    charge = event["data"]["object"]
    charge.update(
        id=f"ch_gen_{i}",
        amount=paid,
        amount_captured=paid,
        amount_refunded=refunded,  # equal to the listed refunds: no derived `:unlisted` refund
        refunded=refunded == paid,
        currency=currency,
        payment_intent=f"pi_gen_{i}",
        livemode=False,
    )
    (refund,) = charge["refunds"]["data"]
    refund.update(
        id=f"re_gen_{i}",
        amount=refunded,
        charge=f"ch_gen_{i}",
        payment_intent=f"pi_gen_{i}",
        currency=currency,
        status="succeeded",
        created=created,
    )
    charge["refunds"].update(total_count=1, has_more=False)
    return event


def generate_history(rng: random.Random) -> History:
    payment_template = fixture_event(PAYMENT_TEMPLATE)
    refund_template = fixture_event(REFUND_TEMPLATE)
    sums: dict[str, dict[str, int]] = {}
    events: list[bytes] = []
    refunds = 0
    for i in range(PAYMENTS):
        amount = rng.randint(100, 100_000)
        currency = rng.choice(CURRENCIES)
        events.append(json.dumps(payment_event(payment_template, i, amount, currency)).encode())
        totals = sums.setdefault(currency, {"gross": 0, "refunds": 0})
        totals["gross"] += amount
        if rng.random() < REFUND_SHARE:
            refunded = amount if rng.random() < 0.3 else rng.randint(1, amount)
            created = BASE_CREATED + PAYMENTS + rng.randint(0, 3600)
            event = refund_event(refund_template, i, amount, refunded, currency, created)
            events.append(json.dumps(event).encode())
            totals["refunds"] += refunded
            refunds += 1
    expected = {
        currency: {"gross": t["gross"], "refunds": t["refunds"], "net": t["gross"] - t["refunds"]}
        for currency, t in sums.items()
    }
    return History(events=events, payments=PAYMENTS, refunds=refunds, expected=expected)


@dataclass
class Poster:
    """Posts the deliveries in order from a background thread with its own HTTP client,
    retrying like Stripe (connection errors and 5xx) while a service is down."""

    url: str
    deliveries: list[bytes]
    done: int = 0
    retries: int = 0
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def deliver(self, client: httpx.Client, body: bytes) -> None:
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        while True:
            try:
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": stripe_signature(body, TEST_SECRET),
                }
                response = client.post("/webhooks/stripe", content=body, headers=headers)
                if response.status_code == 200:
                    return
                assert response.status_code >= 500, f"{response.status_code}: {response.text}"
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"delivery {self.done} not accepted within {DELIVERY_DEADLINE_S} s")
            self.retries += 1
            time.sleep(0.2)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=10) as client:
                for body in self.deliveries:
                    self.deliver(client, body)
                    self.done += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.finished.set()


def wait_for_progress(poster: Poster, target: int) -> bool:
    """Until `target` deliveries are accepted; False when the poster finished or failed first."""
    while poster.done < target:
        if poster.finished.is_set():
            return False
        time.sleep(0.02)
    return True


def poll(pipeline: Pipeline, describe: str, read, expected, timeout_s: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    seen: Any = None
    while time.monotonic() < deadline:
        seen = read()
        if seen == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"{describe}: expected {expected!r}, last seen {seen!r}")


def test_sigkilled_services_lose_nothing_and_count_nothing_twice(pipeline: Pipeline) -> None:
    rng = random.Random(SEED)
    history = generate_history(rng)
    duplicates = rng.sample(history.events, round(len(history.events) * DUPLICATE_SHARE))
    deliveries = history.events + duplicates  # duplicates are the very same bytes
    rng.shuffle(deliveries)
    total = len(deliveries)
    print(
        f"{history.payments} payments, {history.refunds} refunds, {len(history.events)} events, "
        f"{total} deliveries; expected {history.expected}"
    )

    poster = Poster(pipeline.url, deliveries)
    thread = threading.Thread(target=poster.run, name="stripe-deliveries", daemon=True)
    thread.start()
    crashes = [
        (0.25, ("processor",)),
        (0.50, ("sink-postgres",)),
        (0.75, ("web",)),
        (0.90, ("processor", "sink-postgres")),
    ]
    performed = []
    for share, names in crashes:
        if not wait_for_progress(poster, int(total * share)):
            break
        for name in names:
            pipeline.kill(name)
        for name in names:
            pipeline.start(name)
        performed.append((poster.done, names))
    thread.join(timeout=DELIVERY_DEADLINE_S * 2)
    assert not thread.is_alive(), f"deliveries stuck at {poster.done}/{total}"
    if poster.error is not None:
        raise AssertionError(f"delivery failed after {poster.done}/{total}") from poster.error
    assert poster.done == total
    print(f"crashes (deliveries done, services): {performed}; {poster.retries} retried posts")
    assert len(performed) >= 3, f"deliveries finished before the crashes: {performed}"

    pipeline.wait_for_totals(history.expected, livemode=False, timeout_s=120)
    raw = pipeline.raw_message_count()
    assert raw >= total, f"{raw} messages on the raw topic, {total} deliveries accepted"

    expected_ledger = sorted(
        [(currency, "payment", t["gross"]) for currency, t in history.expected.items()]
        + [(currency, "refund", t["refunds"]) for currency, t in history.expected.items() if t["refunds"]]
    )
    poll(
        pipeline,
        "revenue_ledger counted sums",
        lambda: sorted(
            (currency, kind, int(amount))
            for currency, kind, amount in pipeline.sql(
                "SELECT currency, kind, sum(amount_minor) FROM revenue_ledger WHERE counted GROUP BY 1, 2"
            )
        ),
        expected_ledger,
    )
    poll(
        pipeline,
        "revenue_ledger rows",
        lambda: pipeline.sql("SELECT count(*) FROM revenue_ledger")[0][0],
        history.payments + history.refunds,
    )
    poll(
        pipeline,
        "webhook_events rows",
        lambda: pipeline.sql("SELECT count(*) FROM webhook_events")[0][0],
        len(history.events),
    )
    # Still equal after everything settled: nothing arrived late and double counted.
    assert pipeline.totals(livemode=False) == history.expected
