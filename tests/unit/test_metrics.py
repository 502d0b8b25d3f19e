"""The metrics code paths: bounded labels, once-per-record revenue counting, ingest counters."""

import json
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from ingest.metrics import event_type_label
from processors.metrics import RevenueCounter
from schemas.envelope import Source
from schemas.revenue import DerivedEvent, EventState, RevenueKind, RevenueRecord, WebhookEventRecord
from tests.stripe_fixtures import fixture_bytes
from tests.unit.test_ingest_http import RecordingPublisher, client_for, post


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_event_type_label_is_bounded() -> None:
    assert event_type_label("charge.succeeded") == "charge.succeeded"
    assert event_type_label("sale") == "sale"
    assert event_type_label("v2.core.account.updated") == "other"
    assert event_type_label("x" * 200) == "other"


def test_ingest_counts_events_by_type_and_status() -> None:
    body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")
    unknown = json.dumps({**json.loads(body), "type": "made.up.event"}).encode()
    labels = {"source": "stripe", "type": "charge.succeeded"}
    ok_before = sample("revstream_webhook_events_total", **labels, status="200")
    down_before = sample("revstream_webhook_events_total", **labels, status="503")
    other_before = sample("revstream_webhook_events_total", source="stripe", type="other", status="200")
    assert post(client_for(RecordingPublisher()), body).status_code == 200
    assert post(client_for(RecordingPublisher()), unknown).status_code == 200
    assert post(client_for(RecordingPublisher(fail=True)), body).status_code == 503
    assert sample("revstream_webhook_events_total", **labels, status="200") == ok_before + 1
    assert sample("revstream_webhook_events_total", **labels, status="503") == down_before + 1
    assert sample("revstream_webhook_events_total", source="stripe", type="other", status="200") == (
        other_before + 1
    )


def _derived(record_id: str, amount: int, counted: bool = True, currency: str = "zzz") -> DerivedEvent:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    record = RevenueRecord(
        record_id=record_id,
        kind=RevenueKind.PAYMENT,
        source=Source.STRIPE,
        entity="default",
        payment_key=record_id,
        amount_minor=amount,
        currency=currency,
        livemode=True,
        counted=counted,
        status="succeeded",
        occurred_at=now,
        version=1,
        source_event_id="evt_1",
        source_event_type="charge.succeeded",
    )
    event = WebhookEventRecord(
        source=Source.STRIPE,
        provider_event_id="evt_1",
        event_type="charge.succeeded",
        entity="default",
        livemode=True,
        received_at=now,
        event_created_at=now,
        state=EventState.PROCESSED,
    )
    return DerivedEvent(event=event, revenue=[record])


def test_revenue_counter_counts_each_record_once() -> None:
    labels = {"kind": "payment", "currency": "zzz", "livemode": "true"}
    before = sample("revstream_revenue_amount_minor_total", **labels)
    counter = RevenueCounter(capacity=2)
    counter.observe(_derived("stripe:payment:pi_a", 500))
    counter.observe(_derived("stripe:payment:pi_a", 500))  # the same payment from another event type
    counter.observe(_derived("stripe:payment:pi_b", 70, counted=False))  # carries no money
    counter.observe(_derived("stripe:payment:pi_c", 30))
    assert sample("revstream_revenue_amount_minor_total", **labels) == before + 530
    assert sample("revstream_revenue_records_total", **labels) >= 2
