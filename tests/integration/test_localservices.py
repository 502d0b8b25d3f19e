"""Real local Kafka and PostgreSQL processes: start, use, restart with data kept, stop without leftovers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from revstream.localservices import LocalServiceError, pid_alive
from revstream.localservices.kafka import LocalKafka, create_topics
from revstream.localservices.postgres import LocalPostgres, unreachable_ancestor

pytestmark = [pytest.mark.integration]

TOPIC = "localservices-roundtrip"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _produce(bootstrap: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, value, key=b"k", partition=0)
    finally:
        await producer.stop()


async def _consume_first(bootstrap: str) -> bytes:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
        assert record.value is not None
        return record.value
    finally:
        await consumer.stop()


def test_kafka_roundtrip_survives_restart(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), partitions=1)
    try:
        kafka.start()
        first_pid = kafka.pid
        assert first_pid is not None
        create_topics(kafka.bootstrap_servers, [TOPIC], partitions=1)
        create_topics(kafka.bootstrap_servers, [TOPIC], partitions=1)  # idempotent
        asyncio.run(_produce(kafka.bootstrap_servers, b"paid:42"))
        assert asyncio.run(_consume_first(kafka.bootstrap_servers)) == b"paid:42"

        kafka.stop()
        assert not pid_alive(first_pid)

        kafka.start()  # same data dir: storage is not re-formatted, the record must still be there
        assert asyncio.run(_consume_first(kafka.bootstrap_servers)) == b"paid:42"
        second_pid = kafka.pid
        assert second_pid is not None
    finally:
        kafka.stop()
    assert kafka.pid is None
    assert not pid_alive(second_pid)


def test_kafka_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        kafka = LocalKafka(tmp_path / "kafka", port=taken, controller_port=_free_port())
        try:
            with pytest.raises(LocalServiceError, match=rf"port {taken} is in use"):
                kafka.start()
            assert kafka.pid is None  # nothing was spawned
        finally:
            kafka.stop()


@pytest.fixture
def pg_data_dir(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, unless (as root) the 'postgres' user cannot enter pytest's 0700 basetemp."""
    if unreachable_ancestor(tmp_path / "pg") is None:
        yield tmp_path / "pg"
        return
    own = Path(tempfile.mkdtemp(prefix="revstream-pg-test-"))
    try:
        yield own
    finally:
        shutil.rmtree(own, ignore_errors=True)


def test_postgres_start_create_database_stop(pg_data_dir: Path) -> None:
    postgres = LocalPostgres(pg_data_dir, port=_free_port())
    try:
        postgres.start()
        pid = postgres.pid
        assert pid is not None
        url = postgres.create_database("revstream_localservices")
        assert postgres.create_database("revstream_localservices") == url  # idempotent
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("select current_setting('fsync')").fetchone() == ("on",)
    finally:
        postgres.stop()
    assert postgres.pid is None
    assert not pid_alive(pid)


def test_kafka_formats_with_a_cluster_id_that_starts_with_a_dash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random cluster ids start with "-" about once in 32 starts; the format must not read it as an option."""
    from revstream.localservices import kafka as kafka_module

    monkeypatch.setattr(kafka_module, "_new_cluster_id", lambda: "-vNkAHSbQ2uQ3o6d2oV9fA")
    kafka = LocalKafka(tmp_path / "kafka", port=_free_port(), controller_port=_free_port())
    try:
        kafka.start()
    finally:
        kafka.stop()
