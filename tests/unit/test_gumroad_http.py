"""POST /webhooks/gumroad/{token}: every answer, with a recording publisher standing in for Kafka
(the broker path is covered by tests/integration/test_gumroad_end_to_end.py)."""

import json

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ingest.gumroad_http import GumroadConfig, gumroad_routes
from revstream.gumroad_wiring import gumroad_routes_for
from revstream.settings import SettingsError, load_settings
from tests.gumroad_fixtures import FORM, SALE_ID, SELLER, form, ping, sale_form_bytes, subscription_ping
from tests.unit.test_ingest_http import RecordingPublisher

TOKEN = "gr_token_unit_4f9a"
NOW = 1_800_000_000


def client_for(
    publisher: RecordingPublisher, secret: str | None = TOKEN, sellers: tuple[str, ...] = (SELLER,)
) -> TestClient:
    config = GumroadConfig(
        secret=secret, seller_ids=sellers, entity="acme", max_body_bytes=16 * 1024, clock=lambda: NOW
    )
    return TestClient(Starlette(routes=gumroad_routes(config, publisher)), raise_server_exceptions=False)


def post(client: TestClient, body: bytes, content_type: str = FORM, token: str = TOKEN, **headers: str):  # noqa: ANN201
    return client.post(
        f"/webhooks/gumroad/{token}", content=body, headers={"Content-Type": content_type, **headers}
    )


def test_the_published_form_ping_is_enveloped_byte_for_byte_then_acknowledged() -> None:
    publisher = RecordingPublisher()
    response = post(client_for(publisher), sale_form_bytes())
    assert response.status_code == 200 and response.json() == {"received": True, "id": f"{SALE_ID}:sale"}
    ((envelope, key),) = publisher.published
    assert envelope.body == sale_form_bytes() and key == SALE_ID.encode()
    assert (envelope.source.value, envelope.entity, envelope.event_type) == ("gumroad", "acme", "sale")
    assert envelope.provider_event_id == f"{SALE_ID}:sale" and envelope.livemode is False
    assert envelope.received_at.timestamp() == NOW and envelope.backfilled is False


def test_json_pings_and_retries_are_accepted_under_one_id() -> None:
    publisher = RecordingPublisher()
    client = client_for(publisher)
    fields = ping(resource_name="sale", test=None)
    assert post(client, json.dumps(fields).encode(), "application/json").status_code == 200
    assert post(client, form({**fields, "retry_count": "1"})).status_code == 200
    ids = {envelope.provider_event_id for envelope, _ in publisher.published}
    assert ids == {f"{SALE_ID}:sale"} and all(e.livemode for e, _ in publisher.published)


def test_subscription_pings_have_no_seller_and_pass_on_the_token() -> None:
    publisher = RecordingPublisher()
    assert post(client_for(publisher), form(subscription_ping("cancellation"))).status_code == 200
    ((envelope, key),) = publisher.published
    assert envelope.event_type == "cancellation" and key == b"sub_Xy12ab=="


def test_a_wrong_token_and_a_disabled_route_answer_the_same_404() -> None:
    publisher = RecordingPublisher()
    wrong = post(client_for(publisher), sale_form_bytes(), token="guess")
    disabled = post(client_for(publisher, secret=None, sellers=()), sale_form_bytes(), token="guess")
    assert wrong.status_code == disabled.status_code == 404
    assert wrong.json() == disabled.json()
    assert publisher.published == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (form(ping(seller_id="someone-else==")), FORM, 403),
        (form(ping(seller_id=None)), FORM, 400),
        (form(ping(resource_name="chargeback")), FORM, 400),
        (form(ping(sale_id=None, resource_name=None)), FORM, 400),
        (b"{not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"\xff\xfe\xfd", FORM, 400),
        (sale_form_bytes(), "text/plain", 415),
        (sale_form_bytes(), "", 415),
        (b"a=" + b"x" * (16 * 1024), FORM, 413),
        (b"&".join(b"f%d=1" % i for i in range(1500)), FORM, 400),
    ],
)
def test_bad_pings_are_4xx_and_publish_nothing(body: bytes, content_type: str, status: int) -> None:
    publisher = RecordingPublisher()
    response = post(client_for(publisher), body, content_type)
    assert response.status_code == status, response.text
    assert publisher.published == []
    assert "Traceback" not in response.text and TOKEN not in response.text


def test_broker_unavailable_is_503_with_retry_after() -> None:
    response = post(client_for(RecordingPublisher(fail=True)), sale_form_bytes())
    assert response.status_code == 503 and response.headers["retry-after"].isdigit()


def test_gumroad_refuses_to_run_without_an_allow_list() -> None:
    with pytest.raises(ValueError):
        GumroadConfig(secret=TOKEN, seller_ids=(), entity="acme", max_body_bytes=1024)
    settings = load_settings({"GUMROAD_WEBHOOK_SECRET": TOKEN, "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"})
    with pytest.raises(SettingsError, match="GUMROAD_SELLER_IDS"):
        gumroad_routes_for(settings, RecordingPublisher())


def test_the_allow_list_setting_is_comma_separated() -> None:
    settings = load_settings({"GUMROAD_WEBHOOK_SECRET": TOKEN, "GUMROAD_SELLER_IDS": f" {SELLER}, other== "})
    assert settings.gumroad_seller_ids == [SELLER, "other=="]
    (route,) = gumroad_routes_for(settings, RecordingPublisher())
    assert route.path == "/webhooks/gumroad/{token}"
