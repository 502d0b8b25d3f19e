"""Builds the shared pieces every service needs from Settings."""

import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from revstream.settings import Settings, SettingsError
from schemas.topics import Topics

GROUP_PROCESSOR = "revstream-processor"
GROUP_SINK_POSTGRES = "revstream-sink-postgres"
GROUP_SINK_CLICKHOUSE = "revstream-sink-clickhouse"
GROUP_RAW_ARCHIVE = "revstream-raw-archive"


def topics_for(settings: Settings) -> Topics:
    return Topics(prefix=settings.topic_prefix)


def group_for(settings: Settings, group: str) -> str:
    """Consumer groups share the topic prefix, so isolated deployments never share offsets."""
    return settings.topic_prefix + group


def _bootstrap(settings: Settings) -> list[str]:
    settings.require("KAFKA_BOOTSTRAP_SERVERS")
    assert settings.kafka_bootstrap_servers is not None
    return settings.kafka_bootstrap_servers.split(",")


def producer_options(settings: Settings) -> dict[str, Any]:
    """Every producer waits for all in-sync replicas (acks=all) and is idempotent, so a retried
    send never writes a second copy."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "request_timeout_ms": max(settings.publish_timeout_ms, 1000),
        # aiokafka keeps one produce request in flight per broker and makes send() wait while a
        # partition's batch is full; at its 16 KiB default that is ~10 envelopes per round trip.
        # 512 KiB lets a busy ingest or processor put hundreds in one request (measured with
        # `revstream bench`: several times less broker CPU per event). No added latency: linger stays 0.
        "max_batch_size": 512 * 1024,
    }


FETCH_MIN_BYTES = 256 * 1024


def fetch_max_wait_ms(settings: Settings) -> int:
    """For the high-volume consumers (with FETCH_MIN_BYTES): the broker holds a fetch until that
    many bytes are ready or half the flush window passed, instead of answering with the first
    record or two. In a steady flow that is far fewer fetch requests per event for the broker (its
    CPU per webhook fell ~16% in `revstream bench`), for at most flush_ms / 2 more latency per hop."""
    return max(1, settings.sink_flush_ms // 2)


def make_broker(settings: Settings, client_id: str) -> KafkaBroker:
    """A FastStream Kafka broker (consumers, and producers off the hot path) with producer_options."""
    kafka_log = logging.getLogger(f"revstream.{client_id}.kafka")
    kafka_log.setLevel(logging.WARNING)  # FastStream logs every message at INFO
    return KafkaBroker(
        _bootstrap(settings), client_id=client_id, logger=kafka_log, **producer_options(settings)
    )


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """A bare aiokafka producer with producer_options, for hot paths that publish raw bytes: no
    FastStream message building, headers or correlation ids per message (ingest's raw envelopes)."""
    return AIOKafkaProducer(
        bootstrap_servers=_bootstrap(settings), client_id=client_id, **producer_options(settings)
    )


def require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise SettingsError(
            "DATABASE_URL is not set: point it at PostgreSQL (postgresql://user:pass@host:5432/db), "
            "or use `revstream up`, which starts a local server"
        )
    return settings.database_url
