"""The webhook route's answers, with an in-memory publisher standing in for Kafka (the real
broker path is covered by tests/integration)."""

import json

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ingest.http import IngestConfig, StripeEndpoint, stripe_routes
from ingest.publisher import PublishUnavailable
from schemas.envelope import RawEnvelope
from tests.stripe_fixtures import fixture_bytes, stripe_signature

SECRET = "whsec_unit"
NOW = 1_800_000_000


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[RawEnvelope, bytes]] = []
        self.fail = fail

    async def publish(self, envelope: RawEnvelope, key: bytes) -> None:
        if self.fail:
            raise PublishUnavailable("TimeoutError")
        self.published.append((envelope, key))


def client_for(publisher: RecordingPublisher, secrets: list[str] | None = None) -> TestClient:
    config = IngestConfig(
        stripe_endpoints=[StripeEndpoint("default", "acme", [SECRET] if secrets is None else secrets)],
        tolerance_s=300,
        max_body_bytes=64 * 1024,
        clock=lambda: NOW,
    )
    return TestClient(Starlette(routes=stripe_routes(config, publisher)), raise_server_exceptions=False)


def post(client: TestClient, body: bytes, **headers: str):  # noqa: ANN201
    sent = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, SECRET, NOW)}
    return client.post("/webhooks/stripe", content=body, headers={**sent, **headers})


def test_verified_event_is_enveloped_with_its_exact_bytes_then_acknowledged() -> None:
    publisher = RecordingPublisher()
    body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")
    response = post(client_for(publisher), body)
    assert response.status_code == 200
    ((envelope, key),) = publisher.published
    assert envelope.body == body and envelope.entity == "acme" and envelope.event_type == "charge.succeeded"
    assert key == json.loads(body)["data"]["object"]["id"].encode()
    assert RawEnvelope.from_bytes(envelope.to_bytes()) == envelope  # bytes survive the topic


def test_broker_unavailable_is_503_with_retry_after() -> None:
    body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")
    response = post(client_for(RecordingPublisher(fail=True)), body)
    assert response.status_code == 503 and response.headers["retry-after"].isdigit()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Stripe-Signature": "t=1,v1=00"}, None, 400),
        ({"Content-Type": "application/x-www-form-urlencoded"}, None, 415),
        ({}, b"x" * (64 * 1024 + 1), 413),
        ({"Content-Length": "abc"}, None, 400),
    ],
)
def test_client_mistakes_are_4xx_and_publish_nothing(headers: dict, body: bytes | None, status: int) -> None:
    publisher = RecordingPublisher()
    response = post(
        client_for(publisher), body or fixture_bytes("stripe-ruby-mock/charge.failed__1.json"), **headers
    )
    assert response.status_code == status
    assert publisher.published == []
    assert "Traceback" not in response.text


def test_endpoint_without_secret_is_disabled() -> None:
    response = post(client_for(RecordingPublisher(), secrets=[]), b"{}")
    assert response.status_code == 404
