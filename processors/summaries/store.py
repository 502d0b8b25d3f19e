"""Summaries in PostgreSQL: computed from revenue_ledger, stored once per period, announced once.

The insert and its Slack outbox row share one transaction, and revenue_summaries is unique per
(kind, period_start): a scheduler that runs twice, or two schedulers, produce each period once.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.summaries.build import build_summary
from processors.summaries.schedule import due_periods, previous_period
from schemas.alerts import SummaryKind, SummaryPeriod

log = logging.getLogger("revstream.summaries")

# Live money only (test-mode money never mixes into a summary); refunds count when they moved money.
REVENUE = """
SELECT entity, source, currency, kind, count(*), COALESCE(sum(amount_minor), 0)
FROM revenue_ledger
WHERE livemode AND counted AND kind IN ('payment', 'refund') AND occurred_at >= %s AND occurred_at < %s
GROUP BY entity, source, currency, kind
"""
EVENTS = """
SELECT entity, source, livemode, state, count(*) FROM webhook_events
WHERE received_at >= %s AND received_at < %s GROUP BY entity, source, livemode, state
"""
ALERTS = "SELECT rule, count(*) FROM alerts WHERE window_start >= %s AND window_start < %s GROUP BY rule"
INSERT = """
INSERT INTO revenue_summaries (summary_id, kind, label, period_start, period_end, timezone, body)
VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING summary_id
"""
OUTBOX = """
INSERT INTO slack_outbox (message_id, kind, ref, subject_time) VALUES (%s, 'summary', %s, %s)
ON CONFLICT (message_id) DO NOTHING
"""


def summary_id(period: SummaryPeriod) -> str:
    return f"{period.kind.value}:{period.label}"


async def _rows(cur: AsyncCursor[Any], sql: str, start: datetime, end: datetime) -> list[Any]:
    await cur.execute(sql, (start, end))
    return list(await cur.fetchall())


async def produce(pool: AsyncConnectionPool, period: SummaryPeriod, tz: ZoneInfo) -> bool:
    """Compute and store one summary; True if this call produced it (False: it already existed)."""
    before = previous_period(period, tz)
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "SELECT 1 FROM revenue_summaries WHERE kind = %s AND period_start = %s",
            (period.kind.value, period.start),
        )
        if await cur.fetchone() is not None:
            return False
        body = build_summary(
            period,
            await _rows(cur, REVENUE, period.start, period.end),
            await _rows(cur, REVENUE, before.start, before.end),
            await _rows(cur, EVENTS, period.start, period.end),
            await _rows(cur, ALERTS, period.start, period.end),
        )
        sid = summary_id(period)
        await cur.execute(
            INSERT,
            (sid, period.kind.value, period.label, period.start, period.end, period.timezone, Jsonb(body)),
        )
        if await cur.fetchone() is None:
            return False  # another scheduler produced it a moment ago
        await cur.execute(OUTBOX, (f"summary:{sid}", sid, period.end))
        return True


async def last_produced(pool: AsyncConnectionPool, tz: ZoneInfo) -> dict[SummaryKind, date]:
    """The first local day of the newest stored period of each kind."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute("SELECT kind, max(period_start) FROM revenue_summaries GROUP BY kind")
        return {SummaryKind(kind): start.astimezone(tz).date() for kind, start in await cur.fetchall()}


class SummaryScheduler:
    """Produces the due summaries; `clock` is injected so tests can move time."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        tz: ZoneInfo,
        catchup_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._tz = tz
        self._catchup_days = catchup_days
        self._clock = clock

    async def run_due(self) -> list[str]:
        """Produce every due, missing summary; return the ids produced by this call."""
        last = await last_produced(self._pool, self._tz)
        due = due_periods(
            self._clock(),
            self._tz,
            last.get(SummaryKind.DAILY),
            last.get(SummaryKind.WEEKLY),
            self._catchup_days,
        )
        produced = []
        for period in due:
            if await produce(self._pool, period, self._tz):
                produced.append(summary_id(period))
                log.info("summary %s produced", summary_id(period))
        return produced

    async def run_forever(self, stop: asyncio.Event, interval_s: float = 30.0) -> None:
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("summary run failed; retrying in %.0f s", interval_s)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
            except TimeoutError:
                pass
