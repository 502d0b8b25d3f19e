"""Guarantee 1 on a real broker: while Kafka is down, ingest answers 503 + Retry-After (never 2xx);
once it is back, retried deliveries are accepted and every acknowledged event reaches the totals,
through consumers that stayed up across the outage."""

import json
import tempfile
import time
from pathlib import Path

import pytest

from revstream.localservices.kafka import LocalKafka
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints, free_port
from tests.stripe_fixtures import payment_succeeded

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_broker_outage_gives_503_then_recovers(services: ServiceEndpoints, tmp_path: Path) -> None:
    kafka = LocalKafka(
        Path(tempfile.mkdtemp(prefix="revstream-outage-")), port=free_port(), controller_port=free_port()
    )
    kafka.start()
    own = ServiceEndpoints(
        kafka_bootstrap=kafka.bootstrap_servers, postgres_url=services.postgres_url, backend="local"
    )
    pipeline = Pipeline(own, tmp_path)
    pipeline.env["REVSTREAM_PUBLISH_TIMEOUT_MS"] = "1000"
    try:
        pipeline.start_all()
        bodies = [json.dumps(payment_succeeded(f"outage{i}", 1000 + i, "usd")).encode() for i in range(30)]
        for body in bodies[:10]:
            assert pipeline.post_stripe(body).status_code == 200
        first = sum(1000 + i for i in range(10))
        pipeline.wait_for_totals({"usd": {"gross": first, "refunds": 0, "net": first}}, livemode=True)

        kafka.stop()
        answers = [pipeline.post_stripe(body) for body in bodies[10:15]]
        assert [a.status_code for a in answers] == [503] * 5  # never a 2xx while the log is down
        assert all(a.headers["retry-after"].isdigit() for a in answers)
        assert pipeline.http.get("/ready").status_code == 503
        assert pipeline.http.get("/health").status_code == 200  # alive, just not ready

        kafka.start()
        deadline = time.monotonic() + 60
        while (status := pipeline.post_stripe(bodies[10]).status_code) != 200:
            assert status == 503, status  # never a 4xx for a good request
            assert time.monotonic() < deadline, "ingest did not recover after the broker came back"
            time.sleep(0.5)
        assert pipeline.http.get("/ready").status_code == 200
        for body in bodies[11:]:  # Stripe retries the rest
            pipeline.deliver(body)
        # Every acknowledged event is in the log (503'd sends may land too: duplicates are harmless)
        # and, through the consumers that lived through the outage, in the totals exactly once.
        assert pipeline.raw_message_count() >= len(bodies)
        gross = sum(1000 + i for i in range(30))
        pipeline.wait_for_totals({"usd": {"gross": gross, "refunds": 0, "net": gross}}, livemode=True)
    finally:
        pipeline.stop_all()
        kafka.stop()
