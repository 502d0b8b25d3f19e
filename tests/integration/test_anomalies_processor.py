"""The anomaly service end to end on real Kafka, PostgreSQL and chdb: a generated history of five
weeks (derived events, as the revenue processor publishes them) goes through
`revstream run anomalies`; the injected anomalies are each alerted exactly once, normal weeks
raise none, a full replay of the topic repeats nothing, and the alerts reach the ClickHouse
history through revenue.alerts.v1."""

import asyncio
import signal
import time
from pathlib import Path

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from revstream.alerting import GROUP_ALERT_HISTORY, GROUP_ANOMALIES
from tests import anomaly_history as gen
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _publish(bootstrap: str, topic: str, history: gen.History) -> None:
    """Publish like the revenue processor: keyed by payment, so one payment's events share a partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        sends = []
        for derived in history.events:
            key = derived.revenue[0].payment_key if derived.revenue else derived.event.provider_event_id
            sends.append(await producer.send(topic, derived.to_bytes(), key=key.encode()))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _lag(bootstrap: str, group: str, topic: str) -> int | None:
    """Messages in `topic` the consumer group has not committed yet (None: not known yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata fetch
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        try:
            committed = await admin.list_consumer_group_offsets(group)
        except KafkaError:
            return None  # the group coordinator is still starting
        return sum(ends[tp] - (committed[tp].offset if tp in committed else 0) for tp in tps)
    finally:
        await admin.close()
        await consumer.stop()


def wait_caught_up(pipeline: Pipeline, group: str, topic: str, service: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    lag = None
    while time.monotonic() < deadline:
        if pipeline.procs[service].poll() is not None:
            raise AssertionError(f"{service} exited:\n{pipeline.log_tail(service)}")
        lag = asyncio.run(_lag(pipeline.services.kafka_bootstrap, pipeline.topics.prefix + group, topic))
        if lag == 0:
            return
        time.sleep(1)
    raise AssertionError(f"{service} still {lag} messages behind:\n{pipeline.log_tail(service)}")


@pytest.fixture
def deployment(services: ServiceEndpoints, tmp_path: Path, request: pytest.FixtureRequest):  # noqa: ANN201
    pipeline = Pipeline(services, tmp_path)
    pipeline.env["REVSTREAM_ALERT_RULES"] = gen.RULES_JSON
    pipeline.env["REVSTREAM_SINK_BATCH_SIZE"] = "1000"
    try:
        yield pipeline
    finally:
        pipeline.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for name in pipeline.procs:
                print(f"\n----- {name}.log (kept in {tmp_path}) -----\n{pipeline.log_tail(name)}")


def test_injected_anomalies_alert_once_through_kafka(deployment: Pipeline) -> None:
    history = gen.generate()
    bootstrap, events = deployment.services.kafka_bootstrap, deployment.topics.events
    asyncio.run(_publish(bootstrap, events, history))
    deployment.start("anomalies")
    deployment.start("sink-clickhouse")
    wait_caught_up(deployment, GROUP_ANOMALIES, events, "anomalies")

    alerts = deployment.sql("SELECT alert_id, rule, window_start, status, published_at FROM alerts")
    assert sorted((rule, start) for _, rule, start, _, _ in alerts) == sorted(gen.EXPECTED_RULES)
    assert {status for *_, status, _ in alerts} == {"open"}
    outbox = deployment.sql("SELECT ref FROM slack_outbox WHERE kind = 'alert'")
    assert sorted(ref for (ref,) in outbox) == sorted(a[0] for a in alerts)
    (closed,) = deployment.sql("SELECT closed_through FROM anomaly_watermark")[0]
    assert closed > gen.REFUND_SPIKE  # every injected window was judged

    # A replay of the anomalous week (every message again): counted once, nothing alerted twice.
    (buckets_before,) = deployment.sql("SELECT sum(payments), sum(refunds), sum(failed) FROM anomaly_buckets")
    last_week = gen.History(
        [d for d in history.events if d.event.received_at >= history.end - gen.timedelta(weeks=1)]
    )
    asyncio.run(_publish(bootstrap, events, last_week))
    wait_caught_up(deployment, GROUP_ANOMALIES, events, "anomalies")
    assert deployment.sql("SELECT sum(payments), sum(refunds), sum(failed) FROM anomaly_buckets") == [
        buckets_before
    ]
    assert len(deployment.sql("SELECT 1 FROM alerts")) == len(alerts)
    assert len(deployment.sql("SELECT 1 FROM slack_outbox")) == len(alerts)

    # The ClickHouse history holds each alert once.
    assert all(
        published is not None for *_, published in deployment.sql("SELECT alert_id, published_at FROM alerts")
    )
    wait_caught_up(deployment, GROUP_ALERT_HISTORY, deployment.topics.alerts, "sink-clickhouse")
    sink = deployment.procs["sink-clickhouse"]
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=30)
    client = clickhouse_connect.get_client(dsn=deployment.env["CLICKHOUSE_URL"])
    try:
        rows = client.query("SELECT alert_id, rule FROM revenue_alerts FINAL").result_rows
    finally:
        client.close()
    assert sorted(rows) == sorted((a[0], a[1]) for a in alerts)
