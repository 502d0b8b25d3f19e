"""A valid webhook as large as ingest accepts (schemas.envelope.MAX_BODY_BYTES_BYTES) is acknowledged and
derived like any other. Found by this test: with a 1 MiB limit the raw envelope (base64 body,
~1.4 MB) exceeded Kafka's 1 MiB record limit and the provider got 503 for ever."""

import json
import time

import pytest

from schemas.envelope import MAX_BODY_BYTES
from tests.conftest import Pipeline
from tests.stripe_fixtures import fixture_event

pytestmark = pytest.mark.integration


def padded_event(size: int) -> bytes:
    event = fixture_event("stripe-sync-engine/charge.succeeded__1.json")
    event["id"] = "evt_large_1"
    event["data"]["object"]["metadata"] = {"note": ""}
    bare = len(json.dumps(event).encode())
    event["data"]["object"]["metadata"]["note"] = "x" * (size - bare)
    body = json.dumps(event).encode()
    assert len(body) == size
    return body


def test_a_body_at_the_size_limit_is_acknowledged_and_derived(pipeline: Pipeline) -> None:
    body = padded_event(MAX_BODY_BYTES)
    response = pipeline.post_stripe(body)
    assert response.status_code == 200, response.text
    assert pipeline.raw_message_count() == 1

    deadline = time.monotonic() + 60
    while True:
        rows = pipeline.sql("SELECT state FROM webhook_events WHERE provider_event_id = %s", "evt_large_1")
        if rows == [("processed",)]:
            break
        assert time.monotonic() < deadline, f"never derived: {rows}"
        time.sleep(0.3)

    too_big = pipeline.post_stripe(padded_event(MAX_BODY_BYTES + 1))
    assert too_big.status_code == 413  # one byte over: the client's mistake, a 4xx
