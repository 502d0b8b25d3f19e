"""The alerting services: `revstream run anomalies | slack | summaries`.

- anomalies: revenue.events.v1 -> anomaly state, alerts and Slack outbox (PostgreSQL) ->
  revenue.alerts.v1 (ClickHouse history, written by the ClickHouse sink)
- slack: the outbox -> SLACK_WEBHOOK_URL
- summaries: daily (06:00 business time) and weekly (Mondays) summaries from the ledger
"""

import asyncio
import logging
import signal
from zoneinfo import ZoneInfo

from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool

from processors.anomalies.config import ConfigError, parse_rules, parse_tuning
from processors.anomalies.consumer import register_anomaly_processor, relay_alerts
from processors.anomalies.store import AnomalyStore
from processors.summaries.store import SummaryScheduler
from revstream.settings import Settings, SettingsError
from revstream.wiring import (
    FETCH_MIN_BYTES,
    fetch_max_wait_ms,
    group_for,
    make_broker,
    require_database,
    topics_for,
)
from sinks.clickhouse.alerts import register_alert_history_sink
from sinks.clickhouse.client import ClickHouse
from sinks.slack.outbox import Outbox
from sinks.slack.service import max_age, run_sender

log = logging.getLogger("revstream")

ALERTING_SERVICES = ("anomalies", "slack", "summaries")
GROUP_ANOMALIES = "revstream-anomalies"
GROUP_ALERT_HISTORY = "revstream-sink-clickhouse-alerts"


def business_tz(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.business_tz)


def register_alert_history(broker: object, settings: Settings, clickhouse: ClickHouse) -> None:
    """revenue.alerts.v1 -> ClickHouse revenue_alerts, beside the facts sink (same chdb owner)."""
    register_alert_history_sink(
        broker,  # type: ignore[arg-type]
        topic=topics_for(settings).alerts,
        group_id=group_for(settings, GROUP_ALERT_HISTORY),
        clickhouse=clickhouse,
        batch_size=settings.sink_batch_size,
        flush_ms=settings.sink_flush_ms,
    )


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _pool(settings: Settings) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(require_database(settings), min_size=1, max_size=4, open=False)
    await pool.open(wait=True, timeout=30)
    return pool


async def _run_anomalies(settings: Settings) -> None:
    try:
        rules = parse_rules(settings.alert_rules)
        tuning = parse_tuning(settings.anomaly_tuning)
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
    topics = topics_for(settings)
    pool = await _pool(settings)
    broker = make_broker(settings, "anomalies")
    store = AnomalyStore(pool, topics.events, tuning, rules, business_tz(settings))
    register_anomaly_processor(
        broker,
        events_topic=topics.events,
        alerts_topic=topics.alerts,
        group_id=group_for(settings, GROUP_ANOMALIES),
        store=store,
        pool=pool,
        batch_size=settings.sink_batch_size,
        flush_ms=settings.sink_flush_ms,
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=fetch_max_wait_ms(settings),
    )
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)
    stop = _stop_event()
    await broker.start()
    try:
        # Alerts committed by a run that stopped before relaying them go out first.
        await relay_alerts(broker, pool, topics.alerts)
        log.info("anomalies consuming %s (%d threshold rules)", topics.events, len(rules))
        await stop.wait()
    finally:
        await broker.stop()
        await pool.close()


async def _run_slack(settings: Settings) -> None:
    if settings.slack_webhook_url is None:
        raise SettingsError("SLACK_WEBHOOK_URL is not set: the Slack sink needs an incoming-webhook URL")
    pool = await _pool(settings)
    stop = _stop_event()
    try:
        await run_sender(
            Outbox(pool, max_age(settings.slack_max_age_hours)),
            require_database(settings),
            settings.slack_webhook_url.get_secret_value(),
            stop,
        )
    finally:
        await pool.close()


async def _run_summaries(settings: Settings) -> None:
    pool = await _pool(settings)
    stop = _stop_event()
    scheduler = SummaryScheduler(pool, business_tz(settings), settings.summary_catchup_days)
    log.info("summaries scheduled daily at 06:00 %s (weekly on Mondays)", settings.business_tz)
    try:
        await scheduler.run_forever(stop)
    finally:
        await pool.close()


def run_alerting_service(settings: Settings, service: str) -> None:
    runners = {"anomalies": _run_anomalies, "slack": _run_slack, "summaries": _run_summaries}
    asyncio.run(runners[service](settings))
