"""Overload on the real pipeline: hundreds of concurrent webhooks against a small in-flight bound.
Each request gets a prompt 200 or 503 + Retry-After (no timeouts, no stall); the shed ones are not
in Kafka; after the senders retry like Stripe, every event is in Kafka once and in the totals."""

import asyncio
import json
import re

import httpx
import pytest

from tests.conftest import TEST_SECRET, Pipeline
from tests.stripe_fixtures import payment_succeeded, stripe_signature

pytestmark = pytest.mark.integration

CONCURRENT = 300
MAX_INFLIGHT = 32


async def post_all(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def post(body: bytes) -> httpx.Response:
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": stripe_signature(body, TEST_SECRET),
            }
            return await client.post("/webhooks/stripe", content=body, headers=headers)

        return await asyncio.gather(*(post(b) for b in bodies))


@pytest.fixture
def overload_pipeline(pipeline: Pipeline) -> Pipeline:
    pipeline.procs["web"].terminate()
    pipeline.procs["web"].wait(timeout=20)
    pipeline.env["REVSTREAM_MAX_INFLIGHT"] = str(MAX_INFLIGHT)
    pipeline.start("web")
    return pipeline


def test_overload_is_shed_with_503_and_nothing_acknowledged_is_lost(overload_pipeline: Pipeline) -> None:
    pipeline = overload_pipeline
    bodies = [json.dumps(payment_succeeded(f"load{i}", 100 + i, "usd")).encode() for i in range(CONCURRENT)]
    answers = asyncio.run(post_all(pipeline.url, bodies))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    shed = [body for body, answer in zip(bodies, answers, strict=True) if answer.status_code == 503]
    assert shed, "expected some requests over the in-flight bound to be shed"
    assert all(a.headers["retry-after"].isdigit() for a in answers if a.status_code == 503)
    assert pipeline.raw_message_count() == CONCURRENT - len(shed)  # shed means not published
    first_shed = len(shed)

    # The providers retry later, at a pace the bound admits; nothing may be shed twice forever.
    for _ in range(50):
        if not shed:
            break
        retried = asyncio.run(post_all(pipeline.url, shed[: MAX_INFLIGHT // 2]))
        assert {a.status_code for a in retried} <= {200, 503}
        shed = shed[len(retried) :] + [b for b, a in zip(shed, retried, strict=False) if a.status_code == 503]
    assert not shed
    assert pipeline.raw_message_count() == CONCURRENT
    gross = sum(100 + i for i in range(CONCURRENT))
    pipeline.wait_for_totals({"usd": {"gross": gross, "refunds": 0, "net": gross}}, livemode=True)
    metrics = pipeline.http.get("/metrics").text
    (counted,) = re.findall(r'^revstream_webhooks_shed_total\{source="stripe"\} (\S+)$', metrics, re.M)
    assert float(counted) >= first_shed
