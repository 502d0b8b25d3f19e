"""Gumroad pings, over HTTP into a running pipeline on real Kafka, PostgreSQL and chdb, reach the
same revenue totals as the equivalent Stripe payments through the same processors.

The Gumroad pings are live money (no `test` field) and the Stripe fixtures are test mode, so the
two totals are separate and must come out equal."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import PIPELINE_SERVICES, Pipeline
from tests.gumroad_fixtures import SALE_ID, SELLER, ping, sale_form_bytes, subscription_ping
from tests.services import ServiceEndpoints
from tests.stripe_fixtures import fixture_bytes

pytestmark = [pytest.mark.integration]

TOKEN = "gr_integration_token_7c1d"
SALE_B = "qwerqwerqwer=="
STRIPE_EQUIVALENTS = [
    "stripe-ruby-mock/charge.succeeded__1.json",  # 2000 usd
    "stripe-ruby-mock/charge.refunded__1.json",  # refund 100 usd of it
    "stripe-sync-engine/charge.succeeded__1.json",  # 3000 usd
]
EXPECTED = {"usd": {"gross": 5000, "refunds": 100, "net": 4900}}


@pytest.fixture
def gumroad_pipeline(
    services: ServiceEndpoints, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    deployment = Pipeline(services, tmp_path)
    deployment.env |= {"GUMROAD_WEBHOOK_SECRET": TOKEN, "GUMROAD_SELLER_IDS": f"{SELLER},another-seller=="}
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for name in PIPELINE_SERVICES:
                print(f"\n----- {name}.log (kept in {tmp_path}) -----\n{deployment.log_tail(name)}")


def post_gumroad(
    pipeline: Pipeline, body: bytes, json_body: bool = False, token: str = TOKEN
) -> httpx.Response:
    content_type = "application/json" if json_body else "application/x-www-form-urlencoded"
    return pipeline.http.post(
        f"/webhooks/gumroad/{token}", content=body, headers={"Content-Type": content_type}
    )


def wait_until(predicate, timeout_s: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.3)


def test_gumroad_pings_reach_the_same_totals_as_the_equivalent_stripe_payments(
    gumroad_pipeline: Pipeline,
) -> None:
    pipeline = gumroad_pipeline
    for index, name in enumerate(STRIPE_EQUIVALENTS):
        raw = fixture_bytes(name)  # the ruby-mock fixtures share one event id: make each unique
        event_id = json.loads(raw)["id"]
        assert (
            pipeline.post_stripe(raw.replace(event_id.encode(), f"{event_id}_{index}".encode())).status_code
            == 200
        )

    live_sale = sale_form_bytes().replace(b"&test=true", b"")  # the published ping, as live money
    sale_b = ping(sale_id=SALE_B, price=2000, test=None, resource_name="sale")
    refund_b = {
        **sale_b,
        "resource_name": "refund",
        "partially_refunded": True,
        "amount_refunded_in_cents": 100,
    }
    accepted = [
        post_gumroad(pipeline, live_sale),  # sale A: 3000 usd, form-encoded
        post_gumroad(pipeline, live_sale + b"&retry_count=1"),  # Gumroad's retry of it: a duplicate
        post_gumroad(pipeline, json.dumps(sale_b).encode(), json_body=True),  # sale B: 2000 usd, JSON
        post_gumroad(pipeline, json.dumps(refund_b).encode(), json_body=True),  # 100 of B refunded
        post_gumroad(pipeline, urlencode(ping(test=None, resource_name="dispute", disputed="true")).encode()),
        post_gumroad(pipeline, urlencode(subscription_ping("cancellation")).encode()),
    ]
    assert [r.status_code for r in accepted] == [200] * 6, [r.text for r in accepted]
    refused = [
        post_gumroad(pipeline, live_sale, token="not-the-token"),
        post_gumroad(pipeline, live_sale.replace(b"seller_id=asdf", b"seller_id=zzzz")),
    ]
    assert [r.status_code for r in refused] == [404, 403]

    pipeline.wait_for_totals(EXPECTED, livemode=False)  # Stripe
    pipeline.wait_for_totals(EXPECTED, livemode=True)  # Gumroad: the same numbers
    assert pipeline.raw_message_count() == len(STRIPE_EQUIVALENTS) + len(accepted)  # refused: nothing

    query = "SELECT provider_event_id, event_type, state, error FROM webhook_events WHERE source = 'gumroad'"
    wait_until(lambda: len(pipeline.sql(query)) == 5)  # the retry is the same event
    events = {row[0]: row[1:] for row in pipeline.sql(query)}
    assert events[f"{SALE_ID}:sale"] == ("sale", "processed", None)
    assert events[f"{SALE_B}:sale"] == ("sale", "processed", None)
    assert events[f"{SALE_B}:refund:100"] == ("refund", "processed", None)
    assert (
        events[f"{SALE_ID}:dispute"][:2] == ("dispute", "ignored")
        and "dispute" in events[f"{SALE_ID}:dispute"][2]
    )
    cancellation = events["sub_Xy12ab==:cancellation:2023-02-01T10:00:00Z"]
    assert cancellation[:2] == ("cancellation", "ignored") and cancellation[2]

    wait_until(lambda: len(pipeline.sql("SELECT 1 FROM orders WHERE source = 'gumroad'")) == 2)
    ledger = pipeline.sql(
        "SELECT record_id, kind, amount_minor, currency, livemode FROM revenue_ledger WHERE source = 'gumroad' "
        "ORDER BY record_id"
    )
    assert ledger == [
        (f"gumroad:payment:{SALE_ID}", "payment", 3000, "usd", True),
        (f"gumroad:payment:{SALE_B}", "payment", 2000, "usd", True),
        (f"gumroad:refund:{SALE_B}", "refund", 100, "usd", True),
    ]
    wait_until(
        lambda: (
            pipeline.sql("SELECT status FROM orders WHERE order_id = %s", f"gumroad:order:{SALE_B}")
            == [("partially_refunded",)]
        )
    )
