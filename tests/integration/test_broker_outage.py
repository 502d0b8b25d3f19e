"""Guarantee 1 on a real broker: while Kafka is down, ingest answers 503 + Retry-After (never 2xx);
once it is back, the same delivery is accepted and is in the log."""

import tempfile
import time
from pathlib import Path

import pytest

from revstream.localservices.kafka import LocalKafka
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints, free_port
from tests.stripe_fixtures import fixture_bytes

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
        pipeline.start("web")
        body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")
        assert pipeline.post_stripe(body).status_code == 200

        kafka.stop()
        answers = [pipeline.post_stripe(body) for _ in range(3)]
        assert [a.status_code for a in answers] == [503, 503, 503]
        assert all(a.headers["retry-after"].isdigit() for a in answers)
        assert pipeline.http.get("/ready").status_code == 503
        assert pipeline.http.get("/health").status_code == 200  # alive, just not ready

        kafka.start()
        deadline = time.monotonic() + 60
        while (status := pipeline.post_stripe(body).status_code) != 200:
            assert status == 503, status  # never a 2xx before the broker has it, never a 4xx
            assert time.monotonic() < deadline, "ingest did not recover after the broker came back"
            time.sleep(0.5)
        assert pipeline.http.get("/ready").status_code == 200
        # Both acknowledged deliveries are in the log (503'd sends may land too: duplicates are harmless).
        assert pipeline.raw_message_count() >= 2
    finally:
        pipeline.stop_all()
        kafka.stop()
