"""The metrics every service exports, and `revstream bench` against a running pipeline: a tiny run
(with a backlog) reports every key, and its correctness line reads 0 lost, 0 double counted."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, TEST_SECRET, Pipeline
from tests.services import ServiceEndpoints, free_port

pytestmark = [pytest.mark.integration]

REQUIRED_KEYS = {
    "accepted_per_s",
    "baseline_per_s",
    "ack_p50_ms",
    "ack_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "drain_per_s",
    "lost",
    "double_counted",
    "peak_rss_mb",
}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:  # noqa: ANN001
    return samples.get((name, tuple(sorted(labels.items()))))


def wait_for(fetch, check, timeout_s: float = 60):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while True:
        current = fetch()
        if check(current):
            return current
        assert time.monotonic() < deadline, "metric never appeared"
        time.sleep(1)


def test_bench_smoke_and_metrics(services: ServiceEndpoints, tmp_path: Path) -> None:
    pipeline = Pipeline(services, tmp_path)
    metrics_port = free_port()
    pipeline.env["REVSTREAM_METRICS_PORT"] = str(metrics_port)
    try:
        pipeline.start("web")
        pipeline.start("processor")
        pipeline.env["REVSTREAM_METRICS_PORT"] = "0"  # one metrics port per host: only the processor's
        pipeline.start("sink-postgres")

        env = {**pipeline.env, "REVSTREAM_TOPIC_PREFIX": pipeline.topics.prefix}
        command = [sys.executable, "-m", "revstream", "bench", "--url", pipeline.url, "--secret", TEST_SECRET]
        command += ["--database-url", pipeline.database_url, "--kafka", services.kafka_bootstrap]
        command += ["--count", "300", "--baseline-count", "300", "--backlog", "200", "--json"]
        command += ["--timeout", "90"]
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert REQUIRED_KEYS <= report.keys()
        assert report["lost"] == 0 and report["double_counted"] == 0
        assert report["statuses"] == {"200": 300}
        assert report["accepted_per_s"] > 0 and report["baseline_per_s"] > 0
        assert report["drain_per_s"] is not None and report["drain_per_s"] > 0
        assert report["e2e_p99_ms"] is not None and report["e2e_p99_ms"] >= report["e2e_p50_ms"]
        assert {"web", "processor", "sink-postgres"} <= report["peak_rss_mb"].keys()
        assert "bench: webhooks answered 300/300" in done.stderr  # progress is shown

        # Ingest and the ClickHouse sink (web): events by type, consumer lag of its group.
        web = wait_for(
            lambda: scrape(f"{pipeline.url}/metrics"),
            lambda s: (
                value(
                    s,
                    "revstream_consumer_lag_messages",
                    group=pipeline.topics.prefix + "revstream-sink-clickhouse",
                    topic=pipeline.topics.events,
                    partition="0",
                )
                is not None
            ),
        )
        ok = value(
            web, "revstream_webhook_events_total", source="stripe", type="charge.succeeded", status="200"
        )
        assert ok is not None and ok >= 300
        assert (value(web, "revstream_sink_messages_written_total", sink="clickhouse") or 0) > 0
        # The processor: revenue by currency and mode, the DLQ's size, its group's lag (0 when drained).
        processor_url = f"http://127.0.0.1:{metrics_port}/metrics"
        proc = wait_for(
            lambda: scrape(processor_url),
            lambda s: (
                value(s, "revstream_kafka_topic_messages", topic=pipeline.topics.dlq) is not None
                and all(
                    value(
                        s,
                        "revstream_consumer_lag_messages",
                        group=pipeline.topics.prefix + "revstream-processor",
                        topic=pipeline.topics.raw,
                        partition=str(p),
                    )
                    == 0
                    for p in range(4)
                )
            ),
        )
        assert value(proc, "revstream_kafka_topic_messages", topic=pipeline.topics.dlq) == 0
        paid = value(
            proc, "revstream_revenue_amount_minor_total", kind="payment", currency="xts", livemode="false"
        )
        assert paid == 1999 * (270 + 200)  # 270 distinct webhook events (10% duplicates) + the backlog
    finally:
        pipeline.stop_all()


def test_bench_ingest_only_reports_ingest_and_broker_cpu(tmp_path: Path) -> None:
    """--ingest-only starts its own Kafka and ingest: every 2xx is in the raw topic exactly once."""
    command = [sys.executable, "-m", "revstream", "bench", "--ingest-only", "--count", "300"]
    command += ["--baseline-count", "300", "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert REQUIRED_KEYS <= report.keys() and report["mode"] == "ingest-only"
    assert report["statuses"] == {"200": 300} and report["lost"] == 0 and report["double_counted"] == 0
    assert report["accepted_per_s"] > 0 and report["baseline_per_s"] > 0
    cpu = report["cpu_us_per_event"]["webhooks"]
    assert cpu["ingest"] > 0 and cpu["kafka"] > 0 and set(report["peak_rss_mb"]) == {"ingest", "kafka"}
