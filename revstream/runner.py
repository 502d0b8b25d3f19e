"""Runs one pipeline service in this process: `revstream run <service>`.

Services:
- web: ingest + query API + ClickHouse sink on one port (the embedded default, where only
  one process may open the chdb directory)
- ingest, api: the HTTP edge and the query API on their own (production containers)
- processor, sink-postgres, sink-clickhouse: Kafka consumers
"""

import asyncio
import contextlib
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
from starlette.routing import Route

from ingest.http import IngestConfig, StripeEndpoint, stripe_routes
from ingest.publisher import KafkaRawPublisher
from processors.revenue.consumer import register_revenue_processor
from revstream.api import api_routes
from revstream.consumer_lag import lag_watch_for, start_lag_monitor, stop_lag_monitor
from revstream.settings import Settings, SettingsError
from revstream.wiring import (
    GROUP_PROCESSOR,
    GROUP_SINK_CLICKHOUSE,
    GROUP_SINK_POSTGRES,
    group_for,
    make_broker,
    require_database,
    topics_for,
)
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.facts import RevenueFactsStore
from sinks.consumer import register_sink
from sinks.postgres.store import PostgresStore

log = logging.getLogger("revstream")

READY_TIMEOUT_S = 2.0
SERVICES = ("web", "ingest", "api", "processor", "sink-postgres", "sink-clickhouse")


async def _health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _metrics(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _ingest_config(settings: Settings) -> IngestConfig:
    secrets = [s.get_secret_value() for s in settings.stripe_webhook_secrets]
    return IngestConfig(
        stripe_endpoints=[StripeEndpoint(name="default", entity=settings.entity, secrets=secrets)],
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
    )


def build_http_app(settings: Settings, service: str) -> Starlette:
    """The HTTP process: ingest routes, API routes, or both plus the ClickHouse sink (web)."""
    with_ingest = service in ("web", "ingest")
    with_api = service in ("web", "api")
    if with_ingest and not settings.stripe_webhook_secrets:
        raise SettingsError(
            "no webhook source is configured: set STRIPE_WEBHOOK_SECRET (whsec_..., comma-separated "
            "during a rotation)"
        )
    broker = make_broker(settings, service) if with_ingest or service == "web" else None
    clickhouse = ClickHouse(settings.resolved_clickhouse_url) if with_api else None

    async def ready(_: Request) -> JSONResponse:
        """Ready = the broker answers (process alive is /health). API-only processes have no broker."""
        if broker is not None and not await broker.ping(timeout=READY_TIMEOUT_S):
            return JSONResponse({"status": "unavailable", "broker": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    routes = [Route("/health", _health), Route("/ready", ready), Route("/metrics", _metrics)]
    if with_ingest:
        assert broker is not None
        publisher = KafkaRawPublisher(broker, topics_for(settings).raw, settings.publish_timeout_ms / 1000)
        routes += stripe_routes(_ingest_config(settings), publisher)
    if with_api:
        assert clickhouse is not None
        routes += api_routes(settings, clickhouse)
    if service == "web":
        assert broker is not None and clickhouse is not None
        _register_clickhouse_sink(broker, settings, clickhouse)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if broker is not None:
            await broker.start()
        watch = lag_watch_for(settings.topic_prefix, service)
        lag_task = start_lag_monitor(settings.kafka_bootstrap_servers or "", watch) if watch else None
        try:
            yield
        finally:
            await stop_lag_monitor(lag_task)
            if broker is not None:
                await broker.stop()
            if clickhouse is not None:
                clickhouse.close()

    return Starlette(routes=routes, lifespan=lifespan)


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
    await broker.start()
    log.info("%s consuming (topic prefix %r)", service, settings.topic_prefix)
    watch = lag_watch_for(settings.topic_prefix, service)
    lag_task = start_lag_monitor(settings.kafka_bootstrap_servers or "", watch) if watch else None
    try:
        await stop.wait()
    finally:
        await stop_lag_monitor(lag_task)
        # A clean stop: the batch in flight finishes (and commits) before the consumer leaves.
        await broker.stop()
        if pool is not None:
            await pool.close()
        if clickhouse is not None:
            clickhouse.close()


def run_service(settings: Settings, service: str) -> None:
    if service not in SERVICES:
        raise SettingsError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}")
    if service in ("web", "ingest", "api"):
        app = build_http_app(settings, service)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    else:
        uvloop.run(_run_consumer(settings, service))  # uvicorn already runs the HTTP services on uvloop
