"""The webhook route's answers, with an in-memory publisher standing in for Kafka (the real
broker path is covered by tests/integration)."""

import asyncio
import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ingest.http import Admission, IngestConfig, StripeEndpoint, stripe_routes
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


def multi_endpoint_client(publisher: RecordingPublisher) -> TestClient:
    config = IngestConfig(
        stripe_endpoints=[
            StripeEndpoint("default", "acme", [SECRET]),
            StripeEndpoint("eu", "acme-eu", ["whsec_eu_old", "whsec_eu_new"]),
        ],
        tolerance_s=300,
        max_body_bytes=64 * 1024,
        clock=lambda: NOW,
    )
    return TestClient(Starlette(routes=stripe_routes(config, publisher)), raise_server_exceptions=False)


def test_each_endpoint_verifies_with_its_own_secrets_and_records_its_entity() -> None:
    publisher = RecordingPublisher()
    client = multi_endpoint_client(publisher)
    body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")

    def send(path: str, secret: str) -> int:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body, secret, NOW),
        }
        return client.post(path, content=body, headers=headers).status_code

    assert send("/webhooks/stripe/eu", "whsec_eu_old") == 200  # rotation: both secrets verify
    assert send("/webhooks/stripe/eu", "whsec_eu_new") == 200
    assert send("/webhooks/stripe/eu", SECRET) == 400  # another endpoint's secret does not
    assert send("/webhooks/stripe", "whsec_eu_new") == 400
    assert send("/webhooks/stripe/default", SECRET) == 200
    assert send("/webhooks/stripe/us", SECRET) == 404  # unknown endpoint
    assert [(e.endpoint, e.entity) for e, _ in publisher.published] == [
        ("eu", "acme-eu"),
        ("eu", "acme-eu"),
        ("default", "acme"),
    ]


class BlockingPublisher(RecordingPublisher):
    """Holds every publish until released, so requests pile up in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = 0

    async def publish(self, envelope: RawEnvelope, key: bytes) -> None:
        self.waiting += 1
        await self.release.wait()
        await super().publish(envelope, key)


def test_over_the_in_flight_bound_requests_are_shed_with_503_and_the_rest_acknowledged() -> None:
    asyncio.run(_overload())


async def _overload() -> None:
    publisher = BlockingPublisher()
    config = IngestConfig([StripeEndpoint("default", "acme", [SECRET])], 300, 64 * 1024, clock=lambda: NOW)
    app = Starlette(routes=stripe_routes(config, publisher, Admission(limit=5)))
    body = fixture_bytes("stripe-sync-engine/charge.succeeded__1.json")
    headers = {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, SECRET, NOW)}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        requests = [
            asyncio.create_task(client.post("/webhooks/stripe", content=body, headers=headers))
            for _ in range(20)
        ]
        # 5 publishes are held; the other 15 must get their answer without waiting for them.
        for _ in range(500):
            done, _pending = await asyncio.wait(requests, timeout=0.01)
            if len(done) == 15 and publisher.waiting == 5:
                break
        shed = [t.result() for t in requests if t.done()]
        assert all(r.status_code == 503 for r in shed)
        publisher.release.set()
        answers = await asyncio.gather(*requests)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 5 + [503] * 15
    assert all(r.headers["retry-after"] == "1" for r in answers if r.status_code == 503)
    assert len(publisher.published) == 5 and len(shed) == 15


def test_thin_v2_event_notification_is_verified_acknowledged_and_recorded_as_ignored() -> None:
    from processors.revenue.derive import derive
    from schemas.revenue import EventState

    publisher = RecordingPublisher()
    body = fixture_bytes("thin_events/stripe-python/v1.billing.meter.error_report_triggered__1.json")
    assert post(client_for(publisher), body).status_code == 200
    ((envelope, key),) = publisher.published
    assert key == b"mtr_123"  # keyed by the related object, like snapshot events by their object
    derived = derive(envelope)
    assert derived.event.state is EventState.IGNORED and derived.revenue == []
