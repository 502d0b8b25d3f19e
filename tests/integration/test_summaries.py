"""Summary scheduling on PostgreSQL with an injected clock: the first run produces the latest
day and week, a second run nothing, a restart after downtime every missed period exactly once
(also with two schedulers racing), and the daily body matches the ledger."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from processors.summaries.store import SummaryScheduler
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints

pytestmark = pytest.mark.integration

TZ = ZoneInfo("America/Chicago")
LEDGER = (
    "INSERT INTO revenue_ledger (record_id, kind, source, entity, payment_key, amount_minor, currency, livemode, "
    "counted, status, occurred_at, version, source_event_id, source_event_type) "
    "VALUES (%s, %s, 'stripe', %s, %s, %s, 'usd', %s, true, 'succeeded', %s, 1, 'evt', 't')"
)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)  # type: ignore[misc]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _scenario(database_url: str) -> None:
    clock = Clock(local(2024, 6, 5, 7, 0))  # Wednesday 07:00 in Chicago
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        scheduler = SummaryScheduler(pool, TZ, catchup_days=7, clock=clock)
        # First run ever: only the latest due day and week (no backfill of all history).
        assert await scheduler.run_due() == ["weekly:2024-W22", "daily:2024-06-04"]
        assert await scheduler.run_due() == []
        clock.now = local(2024, 6, 6, 5, 59)  # Thursday, a minute before 06:00: nothing new yet
        assert await scheduler.run_due() == []
        # Down from Thursday 05:59 until the next Tuesday 06:30: every missed period, once.
        clock.now = local(2024, 6, 11, 6, 30)
        missed = [f"daily:2024-06-{d:02d}" for d in range(5, 10)]
        assert await scheduler.run_due() == [*missed, "weekly:2024-W23", "daily:2024-06-10"]
        assert await scheduler.run_due() == []
        # Two schedulers racing after more downtime: each period is still produced once.
        clock.now = local(2024, 6, 14, 9, 0)
        other = SummaryScheduler(pool, TZ, catchup_days=7, clock=clock)
        first, second = await asyncio.gather(scheduler.run_due(), other.run_due())
        assert sorted(first + second) == ["daily:2024-06-11", "daily:2024-06-12", "daily:2024-06-13"]


def test_summaries_catch_up_once(services: ServiceEndpoints, tmp_path: Path) -> None:
    pipeline = Pipeline(services, tmp_path)
    try:
        rows = [
            ("stripe:payment:pi_1", "payment", "shop", "pi_1", 5000, True, local(2024, 6, 4, 0, 30)),
            ("stripe:payment:pi_2", "payment", "shop", "pi_2", 7000, True, local(2024, 6, 4, 23, 59)),
            ("stripe:refund:re_1", "refund", "shop", "pi_1", 1000, True, local(2024, 6, 4, 12, 0)),
            ("stripe:payment:pi_3", "payment", "shop", "pi_3", 4000, True, local(2024, 6, 3, 12, 0)),
            (
                "stripe:payment:pi_4",
                "payment",
                "shop",
                "pi_4",
                9999,
                False,
                local(2024, 6, 4, 12, 0),
            ),  # test mode
            (
                "stripe:payment:pi_5",
                "payment",
                "shop",
                "pi_5",
                3000,
                True,
                local(2024, 6, 5, 0, 0),
            ),  # next day
        ]
        with psycopg.connect(pipeline.database_url) as conn:
            for record_id, kind, entity, pkey, amount, live, at in rows:
                conn.execute(LEDGER, (record_id, kind, entity, pkey, amount, live, at))
        asyncio.run(_scenario(pipeline.database_url))

        summaries = pipeline.sql("SELECT summary_id FROM revenue_summaries")
        outbox = pipeline.sql("SELECT ref FROM slack_outbox WHERE kind = 'summary'")
        assert sorted(outbox) == sorted(summaries) and len(summaries) == 12
        ((body,),) = pipeline.sql("SELECT body FROM revenue_summaries WHERE summary_id = 'daily:2024-06-04'")
        (line,) = body["revenue"]
        assert (line["gross_minor"], line["payments"], line["refunds_minor"], line["net_minor"]) == (
            12000,
            2,
            1000,
            11000,
        )
        assert (line["previous_net_minor"], line["change_minor"]) == (4000, 7000)
        assert body["movements"][0]["change_minor"] == 7000
        ((week,),) = pipeline.sql("SELECT body FROM revenue_summaries WHERE summary_id = 'weekly:2024-W23'")
        assert week["revenue"][0]["gross_minor"] == 5000 + 7000 + 4000 + 3000
    finally:
        pipeline.stop_all()
