"""The period/trend views count refunds by the ledger's rule, so they agree with the all-time
totals: per payment, refunds are max(individual refunds, the charge's refunded total)."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from revstream.query_api import QueryApi
from revstream.settings import load_settings
from schemas.envelope import Source
from schemas.revenue import DerivedEvent, EventState, RevenueKind, RevenueRecord, WebhookEventRecord
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.facts import RevenueFactsStore
from sinks.clickhouse.queries import revenue_totals

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def record(record_id: str, kind: RevenueKind, amount: int, payment: str, minute: int) -> RevenueRecord:
    return RevenueRecord(
        record_id=record_id,
        kind=kind,
        source=Source.STRIPE,
        entity="default",
        payment_key=payment,
        amount_minor=amount,
        currency="usd",
        livemode=True,
        counted=True,
        status="succeeded",
        occurred_at=WHEN.replace(minute=minute),
        version=minute,
        source_event_id=f"evt_{record_id}",
        source_event_type="test",
    )


def test_views_and_all_time_totals_agree_on_refunds_reported_both_ways(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'clickhouse'}")
    try:
        store = RevenueFactsStore(clickhouse)
        event = WebhookEventRecord(
            source=Source.STRIPE,
            provider_event_id="evt_1",
            event_type="test",
            entity="default",
            livemode=True,
            received_at=WHEN,
            event_created_at=WHEN,
            state=EventState.PROCESSED,
        )
        revenue = [
            # pi_a: listed refunds 300, the charge says 500 refunded -> 500.
            record("pay_a", RevenueKind.PAYMENT, 1000, "pi_a", 1),
            record("re_a1", RevenueKind.REFUND, 300, "pi_a", 2),
            record("total_a", RevenueKind.REFUNDED_TOTAL, 500, "pi_a", 3),
            # pi_b: listed refunds 400, the charge total lags at 100 -> 400.
            record("pay_b", RevenueKind.PAYMENT, 2000, "pi_b", 4),
            record("re_b1", RevenueKind.REFUND, 400, "pi_b", 5),
            record("total_b", RevenueKind.REFUNDED_TOTAL, 100, "pi_b", 6),
        ]
        store.add(DerivedEvent(event=event, revenue=revenue))
        asyncio.run(store.flush())

        all_time = revenue_totals(clickhouse, livemode=True)
        assert all_time["usd"]["refunds"] == 900 and all_time["usd"]["net"] == 2100
        api = QueryApi(load_settings({}), clickhouse, clock=lambda: WHEN.replace(hour=20))
        body = api.totals_body({})
        assert body["all_time"]["currencies"]["usd"]["refunds"] == 900
        assert body["today"]["currencies"]["usd"]["refunds"] == 900
    finally:
        clickhouse.close()
