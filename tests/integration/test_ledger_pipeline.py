"""The ledger through the whole running pipeline (signed webhooks -> Kafka -> processor -> sinks):
an order paid then fully refunded in two parts, a disputed payment, a failed payment, a refund
beyond its charge and a poison event, each delivered twice in shuffled order. Checks the totals
API, the order events on revenue.orders.v1, the refused refund, and `revstream dlq list|replay`."""

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from revstream.dlq import read_topic
from schemas.dead_letter import DeadLetter
from schemas.envelope import RawEnvelope, Source
from schemas.order_events import OrderEvent
from tests.conftest import REPO, Pipeline

pytestmark = [pytest.mark.integration]

T0 = int(time.time()) - 3600


def stripe(event_id: str, event_type: str, created: int, obj: dict[str, Any]) -> bytes:
    event = {"id": event_id, "object": "event", "type": event_type, "created": created, "livemode": True}
    return json.dumps(dict(event, data={"object": obj})).encode()


def charge(pi: str, amount: int, currency: str, **extra: Any) -> dict[str, Any]:
    obj = {
        "id": f"ch_{pi}",
        "object": "charge",
        "amount": amount,
        "currency": currency,
        "status": "succeeded",
    }
    return dict(obj, payment_intent=pi, **extra)


def refund(re: str, pi: str, amount: int, currency: str) -> dict[str, Any]:
    return {
        "id": re,
        "object": "refund",
        "amount": amount,
        "currency": currency,
        "status": "succeeded",
        "payment_intent": pi,
    }


SESSION = {
    "id": "cs_A",
    "object": "checkout.session",
    "mode": "payment",
    "payment_status": "paid",
    "amount_total": 5000,
    "currency": "eur",
    "payment_intent": "pi_A",
    "customer": None,
    "customer_details": {"email": "buyer@example.com"},
}
DISPUTE = {
    "id": "dp_B",
    "object": "dispute",
    "amount": 1000,
    "currency": "usd",
    "charge": "ch_pi_B",
    "payment_intent": "pi_B",
    "status": "needs_response",
}
EVENTS = [
    stripe("evt_cs_A", "checkout.session.completed", T0, SESSION),
    stripe("evt_re_A1", "refund.created", T0 + 10, refund("re_A1", "pi_A", 2000, "eur")),
    stripe("evt_re_A2", "refund.created", T0 + 20, refund("re_A2", "pi_A", 3000, "eur")),
    stripe("evt_ch_B", "charge.succeeded", T0, charge("pi_B", 1000, "usd")),
    stripe("evt_dp_B", "charge.dispute.funds_withdrawn", T0 + 30, DISPUTE),
    stripe("evt_ch_C", "charge.failed", T0, charge("pi_C", 700, "usd", status="failed")),
    stripe("evt_poison", "charge.succeeded", T0, charge("pi_P", 12.5, "usd")),  # type: ignore[arg-type]
]
OVER_REFUND = stripe("evt_re_B1", "refund.created", T0 + 40, refund("re_B1", "pi_B", 4000, "usd"))
EXPECTED = {
    "eur": {"gross": 5000, "refunds": 5000, "net": 0, "disputes": 0, "fees": 0, "failed_payments": 0},
    "usd": {"gross": 1000, "refunds": 0, "net": 0, "disputes": 1000, "fees": 0, "failed_payments": 1},
}


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.3)


def revstream(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        env=pipeline.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish_dead_letter(pipeline: Pipeline, letter: DeadLetter) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=pipeline.services.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(pipeline.topics.dlq, letter.to_bytes())
        finally:
            await producer.stop()

    asyncio.run(send())


def test_ledger_orders_and_dead_letters_end_to_end(pipeline: Pipeline) -> None:
    deliveries = EVENTS * 2
    random.Random(11).shuffle(deliveries)
    for body in deliveries:
        assert pipeline.post_stripe(body).status_code == 200

    wait_until(lambda: pipeline.ledger_totals(livemode=True) == EXPECTED, "ledger totals")

    # A refund of 4000 on the 1000 charge, after the charge is in. (Had it come first, the charge
    # would be the write refused: with contradictory events the later one is refused.)
    for _ in range(2):
        assert pipeline.post_stripe(OVER_REFUND).status_code == 200
    # ClickHouse has no such rule: its totals cap refunds at the charge.
    capped = {**EXPECTED, "usd": {**EXPECTED["usd"], "refunds": 1000, "net": -1000}}
    wait_until(lambda: pipeline.ledger_totals(livemode=True) == capped, "capped totals")

    # PostgreSQL refused the refund beyond the charge and says why; the ledger stays within it.
    refused = wait_until(
        lambda: pipeline.sql("SELECT state, error FROM webhook_events WHERE provider_event_id = 'evt_re_B1'"),
        "the refused refund's record",
    )
    assert refused[0][0] == "failed" and "exceed the charge" in refused[0][1]
    assert pipeline.sql("SELECT count(*) FROM revenue_ledger WHERE record_id = 'stripe:refund:re_B1'") == [
        (0,)
    ]
    orders = pipeline.sql("SELECT order_id, status, refunded_minor, customer_email FROM orders")
    assert orders == [("stripe:order:cs_A", "refunded", 5000, "buyer@example.com")]

    # Order events: each transition once, after deduplicating by event id.
    def order_events() -> dict[str, OrderEvent]:
        values = asyncio.run(read_topic(pipeline.services.kafka_bootstrap, pipeline.topics.orders))
        return {e.event_id: e for e in (OrderEvent.from_bytes(v) for _, v in values)}

    events = wait_until(lambda: len(order_events()) == 2 and order_events(), "two order events")
    assert {(e.event_id, e.type.value, e.entity, e.currency) for e in events.values()} == {
        ("stripe:order:cs_A:paid", "order.paid", "default", "eur"),
        ("stripe:order:cs_A:refunded", "order.refunded", "default", "eur"),
    }
    assert events["stripe:order:cs_A:refunded"].refunded_minor == 5000

    # The poison event is on the dead-letter topic with its reason, and `dlq list` shows it.
    listed = wait_until(
        lambda: "evt_poison" in (out := revstream(pipeline, "dlq", "list")).stdout and out, "dlq"
    )
    assert listed.returncode == 0
    lines = [line for line in listed.stdout.splitlines() if "evt_poison" in line]
    assert lines and all("charge.amount is not a non-negative integer" in line for line in lines)
    assert all("\tprocessor\t" in line for line in lines)

    # After a fix: a letter the pipeline refused earlier comes back through `dlq replay`.
    fixed = stripe("evt_fixed_D", "charge.succeeded", T0, charge("pi_D", 700, "usd"))
    envelope = RawEnvelope(
        source=Source.STRIPE,
        endpoint="default",
        entity="default",
        provider_event_id="evt_fixed_D",
        event_type="charge.succeeded",
        livemode=True,
        received_at=datetime.now(UTC),
        content_type="application/json",
        body=fixed,
    )
    letter = DeadLetter(
        reason="no derivation before the fix",
        topic=pipeline.topics.raw,
        stage="processor",
        failed_at=datetime.now(UTC),
        payload=envelope.to_bytes(),
    )
    publish_dead_letter(pipeline, letter)
    listed = revstream(pipeline, "dlq", "list")
    (line,) = [line for line in listed.stdout.splitlines() if "evt_fixed_D" in line]
    letter_id = line.split("\t")[0]

    assert revstream(pipeline, "dlq", "replay", "--id", "99:0").returncode == 2  # unknown id: nothing sent
    replayed = revstream(pipeline, "dlq", "replay", "--id", letter_id)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1" in replayed.stdout
    wait_until(
        lambda: (
            pipeline.sql("SELECT amount_minor FROM revenue_ledger WHERE record_id = 'stripe:payment:pi_D'")
            == [(700,)]
        ),
        "the replayed payment in the ledger",
    )
