"""The anomaly processor's state in PostgreSQL, and the one transaction a batch is applied in.

Per batch, in ONE transaction (so state, alerts and Slack outbox rows commit together or not at all):
1. lock the watermark row (replicas apply batches one at a time);
2. count the batch's observations once (forward-only by version) into hourly buckets;
3. advance the event-time watermark (minimum over active partitions, minus the lateness);
4. judge the hours and days it closed, plus closed hours that late records changed;
5. insert the alerts found (ON CONFLICT DO NOTHING: ids are deterministic) and, for the ones
   that are new, a Slack outbox row.
A crash before the commit changes nothing; Kafka re-delivers the batch.
"""

from collections.abc import Iterable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from processors.anomalies.config import DetectorConfig, ThresholdRule
from processors.anomalies.detectors import (
    RATE_BASELINE,
    WEEK,
    Series,
    daily_rule_alerts,
    duplicate_charge_alerts,
    payment_rule_alerts,
    rate_alerts,
    seasonal_alerts,
)
from processors.anomalies.observe import (
    HOUR,
    PAYMENT,
    BucketKey,
    Counts,
    Observation,
    apply_versions,
    floor_hour,
    observations,
)
from processors.calendar import day_bounds, days_closed_between, local_date
from schemas.alerts import Alert
from schemas.revenue import DerivedEvent

_OBS_COLUMNS = tuple(f.name for f in fields(Observation))
_COUNT_COLUMNS = tuple(f.name for f in fields(Counts))
_ALERT_COLUMNS = tuple(Alert.model_fields)

UPSERT_OBSERVATION = (
    f"INSERT INTO anomaly_observations ({', '.join(_OBS_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_OBS_COLUMNS))}) "
    "ON CONFLICT (record_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _OBS_COLUMNS if c != "record_id")
    + " WHERE anomaly_observations.version < EXCLUDED.version"
)
APPLY_DELTA = (
    f"INSERT INTO anomaly_buckets (entity, currency, livemode, hour, {', '.join(_COUNT_COLUMNS)}) "
    f"VALUES (%s, %s, %s, %s, {', '.join(['%s'] * len(_COUNT_COLUMNS))}) "
    "ON CONFLICT (entity, currency, livemode, hour) DO UPDATE SET "
    + ", ".join(f"{c} = anomaly_buckets.{c} + EXCLUDED.{c}" for c in _COUNT_COLUMNS)
)
UPSERT_SERIES = (
    "INSERT INTO anomaly_series (entity, currency, livemode, first_hour) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (entity, currency, livemode) DO UPDATE SET "
    "first_hour = LEAST(anomaly_series.first_hour, EXCLUDED.first_hour)"
)
UPSERT_PARTITION = (
    "INSERT INTO anomaly_partitions (topic, partition, max_event_at, seen_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (topic, partition) DO UPDATE SET "
    "max_event_at = GREATEST(anomaly_partitions.max_event_at, EXCLUDED.max_event_at), seen_at = EXCLUDED.seen_at"
)
INSERT_ALERT = (
    f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_ALERT_COLUMNS))}) "
    "ON CONFLICT (alert_id) DO NOTHING RETURNING alert_id"
)
INSERT_OUTBOX = (
    "INSERT INTO slack_outbox (message_id, kind, ref, subject_time) VALUES (%s, 'alert', %s, %s) "
    "ON CONFLICT (message_id) DO NOTHING"
)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def alert_row(alert: Alert) -> tuple[Any, ...]:
    return tuple(
        Jsonb(alert.details)
        if c == "details"
        else getattr(alert, c).value
        if c == "severity"
        else getattr(alert, c)
        for c in _ALERT_COLUMNS
    )


def alert_from_row(row: dict[str, Any]) -> Alert:
    return Alert.model_validate({c: row[c] for c in _ALERT_COLUMNS})


def _observation(values: tuple[Any, ...]) -> Observation:
    row = dict(zip(_OBS_COLUMNS, values, strict=True))
    return Observation(**{**row, "occurred_at": utc(row["occurred_at"])})


def event_time(derived: DerivedEvent) -> datetime:
    """How far in event time one message goes (for the partition's watermark)."""
    times = [r.occurred_at for r in derived.revenue]
    times.append(derived.event.event_created_at or derived.event.received_at)
    return max(times)


class AnomalyStore:
    """Applies batches of derived events to the state and returns the alerts that are new."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        topic: str,
        cfg: DetectorConfig,
        rules: list[ThresholdRule],
        tz: ZoneInfo,
    ) -> None:
        self._pool = pool
        self._topic = topic
        self._cfg = cfg
        self._rules = rules
        self._tz = tz

    async def apply(self, batch: list[tuple[int, DerivedEvent]], now: datetime) -> list[Alert]:
        incoming = [obs for _, derived in batch for obs in observations(derived)]
        reach: dict[int, datetime] = {}
        for partition, derived in batch:
            moment = event_time(derived)
            reach[partition] = max(moment, reach.get(partition, moment))
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT closed_through FROM anomaly_watermark WHERE id = 1 FOR UPDATE")
            row = await cur.fetchone()
            closed: datetime | None = utc(row[0]) if row and row[0] else None
            changed, deltas = await self._count(cur, incoming)
            await cur.executemany(UPSERT_PARTITION, [(self._topic, p, t, now) for p, t in reach.items()])
            watermark = await self._watermark(cur, now)
            firsts = await self._first_hours(cur)
            if not firsts:
                return []
            start = closed or min(firsts.values())
            upto = max(start, floor_hour(watermark - self._cfg.lateness)) if watermark else start
            hours = set(_hours(start, upto))
            days = set(days_closed_between(start, upto, self._tz))
            if closed is not None:  # closed hours (and days) that late records changed: judge again
                late = {key.hour for key in deltas if key.hour < closed}
                hours |= late
                days |= {
                    d
                    for d in map(lambda h: local_date(h, self._tz), late)
                    if day_bounds(d, self._tz)[1] <= closed
                }
            found = await self._judge(cur, hours, days, firsts, changed)
            new = await self._insert(cur, found)
            await cur.execute("UPDATE anomaly_watermark SET closed_through = %s WHERE id = 1", (upto,))
            return new

    async def _count(
        self, cur: AsyncCursor[Any], incoming: list[Observation]
    ) -> tuple[list[Observation], dict[BucketKey, Counts]]:
        """Count each record id once: only the change between stored and newer versions moves buckets."""
        if not incoming:
            return [], {}
        await cur.execute(
            f"SELECT {', '.join(_OBS_COLUMNS)} FROM anomaly_observations WHERE record_id = ANY(%s) FOR UPDATE",
            (sorted({o.record_id for o in incoming}),),
        )
        existing = {obs.record_id: obs for obs in map(_observation, await cur.fetchall())}
        changed, deltas = apply_versions(existing, incoming)
        if changed:
            await cur.executemany(
                UPSERT_OBSERVATION, [tuple(getattr(o, c) for c in _OBS_COLUMNS) for o in changed]
            )
            firsts: dict[Series, datetime] = {}
            for o in changed:
                key = (o.entity, o.currency, o.livemode)
                firsts[key] = min(o.hour, firsts.get(key, o.hour))
            await cur.executemany(UPSERT_SERIES, [(*k, h) for k, h in sorted(firsts.items())])
        if deltas:
            rows = [
                (k.entity, k.currency, k.livemode, k.hour, *(getattr(c, f) for f in _COUNT_COLUMNS))
                for k, c in sorted(deltas.items())
            ]
            await cur.executemany(APPLY_DELTA, rows)
        return changed, deltas

    async def _watermark(self, cur: AsyncCursor[Any], now: datetime) -> datetime | None:
        """Event time every active partition has reached. A partition silent for longer than
        idle_partition_seconds (processing time) stops holding it back."""
        await cur.execute(
            "SELECT max_event_at, seen_at FROM anomaly_partitions WHERE topic = %s", (self._topic,)
        )
        rows = await cur.fetchall()
        if not rows:
            return None
        idle = timedelta(seconds=self._cfg.idle_partition_seconds)
        active = [utc(m) for m, seen in rows if now - seen <= idle]
        return min(active) if active else max(utc(m) for m, _ in rows)

    async def _first_hours(self, cur: AsyncCursor[Any]) -> dict[Series, datetime]:
        await cur.execute("SELECT entity, currency, livemode, first_hour FROM anomaly_series")
        return {(e, c, lm): utc(h) for e, c, lm, h in await cur.fetchall()}

    async def _history(
        self, cur: AsyncCursor[Any], since: datetime, until: datetime
    ) -> dict[Series, dict[datetime, Counts]]:
        await cur.execute(
            f"SELECT entity, currency, livemode, hour, {', '.join(_COUNT_COLUMNS)} FROM anomaly_buckets "
            "WHERE hour >= %s AND hour < %s",
            (since, until),
        )
        history: dict[Series, dict[datetime, Counts]] = {}
        for entity, currency, livemode, hour, *counts in await cur.fetchall():
            history.setdefault((entity, currency, livemode), {})[utc(hour)] = Counts(*counts)
        return history

    async def _candidates(self, cur: AsyncCursor[Any], changed: list[Observation]) -> list[Observation]:
        """Stored payments that could pair with a changed one as a duplicate-looking charge."""
        payments = [o for o in changed if o.kind == PAYMENT and o.customer_id]
        if not payments:
            return []
        window = self._cfg.duplicate_window
        await cur.execute(
            f"SELECT {', '.join(_OBS_COLUMNS)} FROM anomaly_observations "
            "WHERE kind = 'payment' AND customer_id = ANY(%s) AND occurred_at >= %s AND occurred_at <= %s",
            (
                sorted({o.customer_id for o in payments if o.customer_id}),
                min(o.occurred_at for o in payments) - window,
                max(o.occurred_at for o in payments) + window,
            ),
        )
        return [_observation(values) for values in await cur.fetchall()]

    async def _judge(
        self,
        cur: AsyncCursor[Any],
        hours: set[datetime],
        days: set[Any],
        firsts: dict[Series, datetime],
        changed: list[Observation],
    ) -> list[Alert]:
        found = payment_rule_alerts(changed, self._rules)
        found += duplicate_charge_alerts(changed, await self._candidates(cur, changed), self._cfg)
        if hours or days:
            spans = [(h, h + HOUR) for h in hours] + [day_bounds(d, self._tz) for d in days]
            reach_back = max(WEEK * self._cfg.baseline_weeks, RATE_BASELINE) + HOUR
            history = await self._history(
                cur, min(s for s, _ in spans) - reach_back, max(e for _, e in spans)
            )
            found += seasonal_alerts(hours, history, firsts, self._cfg)
            found += rate_alerts(hours, history, firsts, self._cfg)
            found += daily_rule_alerts(days, history, firsts, self._rules, self._tz)
        return found

    async def _insert(self, cur: AsyncCursor[Any], found: Iterable[Alert]) -> list[Alert]:
        """Insert alerts once; only the new ones get a Slack outbox row (same transaction)."""
        new = []
        for alert in {a.alert_id: a for a in found}.values():
            await cur.execute(INSERT_ALERT, alert_row(alert))
            if await cur.fetchone() is not None:
                await cur.execute(
                    INSERT_OUTBOX, (f"alert:{alert.alert_id}", alert.alert_id, alert.window_end)
                )
                new.append(alert)
        return new


def _hours(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], floor_hour(start)
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


async def unpublished_alerts(pool: AsyncConnectionPool, limit: int = 500) -> list[Alert]:
    """Alerts not yet acknowledged by the broker (the outbox towards revenue.alerts.v1)."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE published_at IS NULL "
            "ORDER BY detected_at, alert_id LIMIT %s",
            (limit,),
        )
        names = [d.name for d in cur.description or []]
        return [alert_from_row(dict(zip(names, values, strict=True))) for values in await cur.fetchall()]


async def mark_published(pool: AsyncConnectionPool, alert_ids: list[str]) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET published_at = now() WHERE alert_id = ANY(%s)", (alert_ids,))
