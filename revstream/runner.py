"""Runs one pipeline service in this process: `revstream run <service>`.

Services:
- web: ingest + query API + ClickHouse sink on one port (one process for everything HTTP)
- ingest, api: the HTTP edge and the query API on their own (production containers)
- analytics: the query API + the ClickHouse sink, without ingest: `revstream up` runs it behind
  ingest (REVSTREAM_API_UPSTREAM), since only one process may open the chdb directory
- processor, sink-postgres, sink-clickhouse: Kafka consumers
- anomalies, slack, summaries: alerting (revstream/alerting.py)
"""

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator

import uvicorn
import uvloop
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp

from ingest.events_http import webhook_event_routes
from ingest.http import Admission, FastPaths, IngestConfig, StripeEndpoint, StripeWebhooks
from ingest.idempotency import IdempotencyKeys
from ingest.manual_http import manual_entry_routes
from ingest.publisher import KafkaRawPublisher
from processors.revenue.consumer import register_revenue_processor
from revstream.alerting import ALERTING_SERVICES, register_alert_history, run_alerting_service
from revstream.alerts_api import AlertsApi
from revstream.api import api_routes
from revstream.consumer_lag import lag_watch_for, start_lag_monitor, stop_lag_monitor
from revstream.gumroad_wiring import gumroad_routes_for
from revstream.localservices.kafka import metadata_ok
from revstream.settings import Settings, SettingsError
from revstream.upstream import Upstream
from revstream.wiring import (
    FETCH_MIN_BYTES,
    GROUP_PROCESSOR,
    GROUP_RAW_ARCHIVE,
    GROUP_SINK_CLICKHOUSE,
    GROUP_SINK_POSTGRES,
    fetch_max_wait_ms,
    group_for,
    make_broker,
    make_producer,
    require_database,
    topics_for,
)
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.facts import RevenueFactsStore
from sinks.consumer import register_sink
from sinks.postgres.order_events import relay_order_events
from sinks.postgres.store import PostgresStore
from sinks.postgres.webhook_events import RawArchive, WebhookEvents

log = logging.getLogger("revstream")

READY_TIMEOUT_S = 2.0
GC_YOUNG_THRESHOLD = 50_000
SERVICES = (
    "web",
    "ingest",
    "api",
    "analytics",
    "processor",
    "sink-postgres",
    "sink-clickhouse",
    *ALERTING_SERVICES,
)


async def _health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _ingest_config(settings: Settings) -> IngestConfig:
    secrets = [s.get_secret_value() for s in settings.stripe_webhook_secrets]
    endpoints = [StripeEndpoint(name="default", entity=settings.entity, secrets=secrets)]
    endpoints += [
        StripeEndpoint(name=name, entity=e.entity, secrets=[s.get_secret_value() for s in e.secrets])
        for name, e in settings.stripe_endpoints.items()
    ]
    return IngestConfig(
        stripe_endpoints=endpoints,
        tolerance_s=settings.stripe_tolerance_seconds,
        max_body_bytes=settings.max_body_bytes,
    )


def _register_clickhouse_sink(broker: KafkaBroker, settings: Settings, clickhouse: ClickHouse) -> None:
    register_sink(
        broker,
        name="clickhouse",
        topic=topics_for(settings).events,
        group_id=group_for(settings, GROUP_SINK_CLICKHOUSE),
        store=RevenueFactsStore(clickhouse),
        batch_size=settings.sink_batch_size,
        flush_ms=settings.sink_flush_ms,
        fetch_min_bytes=FETCH_MIN_BYTES,
        fetch_max_wait_ms=fetch_max_wait_ms(settings),
    )
    register_alert_history(broker, settings, clickhouse)


def build_http_app(settings: Settings, service: str) -> ASGIApp:
    """The HTTP process: ingest routes, API routes, or both plus the ClickHouse sink (web); the API
    plus the ClickHouse sink (analytics); ingest forwarding the rest to REVSTREAM_API_UPSTREAM."""
    with_ingest = service in ("web", "ingest")
    with_api = service in ("web", "api", "analytics")
    with_clickhouse_sink = service in ("web", "analytics")
    upstream = Upstream(settings.api_upstream) if service == "ingest" and settings.api_upstream else None
    if with_ingest and not settings.configured_sources():
        # Never fail open: an ingest that accepts nothing is a misconfiguration, not a default.
        raise SettingsError(
            "no source is configured: set STRIPE_WEBHOOK_SECRET (whsec_..., comma-separated during a "
            "rotation), REVSTREAM_STRIPE_ENDPOINTS, GUMROAD_WEBHOOK_SECRET, or REVSTREAM_ADMIN_TOKEN "
            "(manual entries)"
        )
    broker = make_broker(settings, service) if with_ingest or with_clickhouse_sink else None
    publisher = (
        KafkaRawPublisher(
            lambda: make_producer(settings, f"{service}-raw"),
            topics_for(settings).raw,
            settings.publish_timeout_ms / 1000,
        )
        if with_ingest
        else None
    )
    clickhouse = ClickHouse(settings.resolved_clickhouse_url) if with_api else None
    # PostgreSQL on the edge only for operator endpoints (idempotency keys, event records). It is
    # opened lazily and bounded, so webhooks never wait on it and an outage answers 503, not 500.
    state_pool = (
        AsyncConnectionPool(require_database(settings), min_size=1, max_size=8, timeout=5, open=False)
        if with_ingest and (settings.admin_token is not None or settings.database_url)
        else None
    )
    alerts_api = AlertsApi(settings, settings.database_url) if with_api and settings.database_url else None

    async def ready(_: Request) -> JSONResponse:
        """Ready = the broker answers (process alive is /health). API-only processes have no broker."""
        if broker is not None and not await broker.ping(timeout=READY_TIMEOUT_S):
            return JSONResponse({"status": "unavailable", "broker": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    routes: list[BaseRoute] = [Route("/health", _health), Route("/ready", ready), Route("/metrics", _metrics)]
    stripe_webhooks: StripeWebhooks | None = None
    if with_ingest:
        assert publisher is not None
        admission = Admission(settings.max_inflight)
        stripe_webhooks = StripeWebhooks(_ingest_config(settings), publisher, admission)
        routes += stripe_webhooks.routes()
        routes += gumroad_routes_for(settings, publisher, admission)
        routes += manual_entry_routes(
            admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
            default_entity=settings.entity,
            keys=IdempotencyKeys(state_pool) if state_pool is not None else None,
            publisher=publisher,
            max_body_bytes=settings.max_body_bytes,
            admission=admission,
        )
        if state_pool is not None:
            routes += webhook_event_routes(
                read_token=settings.api_token.get_secret_value() if settings.api_token else None,
                admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
                events=WebhookEvents(state_pool),
                publisher=publisher,
            )
    if with_api:
        assert clickhouse is not None
        routes += api_routes(settings, clickhouse)
    if alerts_api is not None:
        routes += alerts_api.routes
    if with_clickhouse_sink:
        assert broker is not None and clickhouse is not None
        _register_clickhouse_sink(broker, settings, clickhouse)
    if upstream is not None:
        routes.append(Mount("/", app=upstream))  # last: only what no route above serves

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if broker is not None:
            await broker.start()
        if publisher is not None:
            await publisher.start()
        if state_pool is not None:
            await state_pool.open(wait=False)
        if alerts_api is not None:
            await alerts_api.start()
        watch = lag_watch_for(settings.topic_prefix, service)
        lag_task = start_lag_monitor(settings.kafka_bootstrap_servers or "", watch) if watch else None
        try:
            yield
        finally:
            await stop_lag_monitor(lag_task)
            if upstream is not None:
                await upstream.close()
            if alerts_api is not None:
                await alerts_api.stop()
            if publisher is not None:
                await publisher.stop()
            if broker is not None:
                await broker.stop()
            if state_pool is not None:
                await state_pool.close()
            if clickhouse is not None:
                clickhouse.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    return FastPaths(app, stripe_webhooks) if stripe_webhooks is not None else app


async def _wait_for_kafka(settings: Settings, stop: asyncio.Event) -> bool:
    """A consumer that starts while Kafka is away waits for it (saying so) instead of exiting;
    False if asked to stop first."""
    assert settings.kafka_bootstrap_servers is not None
    delay = 0.5
    while not await metadata_ok(settings.kafka_bootstrap_servers, wait_s=5):
        log.warning("Kafka at %s is unreachable; retrying in %.0f s", settings.kafka_bootstrap_servers, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return False
        delay = min(delay * 2, 10)
    return True


async def _run_consumer(settings: Settings, service: str) -> None:
    broker = make_broker(settings, service)
    topics = topics_for(settings)
    pool: AsyncConnectionPool | None = None
    clickhouse: ClickHouse | None = None
    if service == "processor":
        register_revenue_processor(
            broker,
            topics,
            group_for(settings, GROUP_PROCESSOR),
            settings.sink_batch_size,
            settings.sink_flush_ms,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=fetch_max_wait_ms(settings),
        )
    elif service == "sink-postgres":
        pool = AsyncConnectionPool(require_database(settings), min_size=1, max_size=4, open=False)
        await pool.open(wait=True, timeout=30)
        register_sink(
            broker,
            name="postgres",
            topic=topics.events,
            group_id=group_for(settings, GROUP_SINK_POSTGRES),
            store=PostgresStore(pool),
            batch_size=settings.sink_batch_size,
            flush_ms=settings.sink_flush_ms,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=fetch_max_wait_ms(settings),
        )
        register_sink(
            broker,
            name="raw-archive",
            topic=topics.raw,
            group_id=group_for(settings, GROUP_RAW_ARCHIVE),
            store=RawArchive(pool),
            batch_size=settings.sink_batch_size,
            flush_ms=settings.sink_flush_ms,
            decode=RawArchive.decode,
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=fetch_max_wait_ms(settings),
        )
    elif service == "sink-clickhouse":
        clickhouse = ClickHouse(settings.resolved_clickhouse_url)
        _register_clickhouse_sink(broker, settings, clickhouse)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.host)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not await _wait_for_kafka(settings, stop):
        return
    await broker.start()
    log.info("%s consuming (topic prefix %r)", service, settings.topic_prefix)
    relay = None
    if pool is not None:  # sink-postgres also publishes the order events its writes recorded
        relay = asyncio.create_task(
            relay_order_events(
                pool,
                lambda e: broker.publish(e.to_bytes(), topic=topics.orders, key=e.order_id.encode()),
                stop,
            )
        )
    watch = lag_watch_for(settings.topic_prefix, service)
    lag_task = start_lag_monitor(settings.kafka_bootstrap_servers or "", watch) if watch else None
    try:
        await stop.wait()
    finally:
        await stop_lag_monitor(lag_task)
        if relay is not None:
            await relay
        # A clean stop: the batch in flight finishes (and commits) before the consumer leaves.
        await broker.stop()
        if pool is not None:
            await pool.close()
        if clickhouse is not None:
            clickhouse.close()


def _tune_gc() -> None:
    """A long-running service allocates millions of short-lived objects (decoded JSON, models) while
    its imported modules and schemas live forever. Freezing the start-up heap keeps the collector
    from re-scanning it on every full collection, and a larger young generation lets a batch's
    garbage die by reference counting before the collector runs. Set from measured drains
    (see README "Performance")."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def run_service(settings: Settings, service: str) -> None:
    if service not in SERVICES:
        raise SettingsError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}")
    _tune_gc()
    if service in ALERTING_SERVICES:
        run_alerting_service(settings, service)
    elif service in ("web", "ingest", "api", "analytics"):
        app = build_http_app(settings, service)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    else:
        uvloop.run(_run_consumer(settings, service))  # uvicorn already runs the HTTP services on uvloop
