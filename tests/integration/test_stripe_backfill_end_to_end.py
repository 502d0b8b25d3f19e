"""`revstream backfill stripe` against a local server serving recorded Events API pages, onto the
real raw topic of a running pipeline: pagination, a 429 with Retry-After, an interruption and
its resume, every event marked backfilled exactly once, and no double counting of the events
that also came by webhook."""

import asyncio
import json
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from schemas.envelope import RawEnvelope
from tests.conftest import REPO, Pipeline
from tests.stripe_api_server import (
    API_KEY,
    EXPECTED_LIVE,
    EXPECTED_TEST,
    RecordedPages,
    backfill_events,
    stripe_api,
)

pytestmark = [pytest.mark.integration]

RATE_LIMITED = (
    429,
    {"Retry-After": "1"},
    {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
)
OUTAGE = (
    500,
    {"Stripe-Should-Retry": "false"},
    {"error": {"type": "api_error", "message": "Something went wrong"}},
)


def read_raw(bootstrap: str, topic: str) -> list[RawEnvelope]:
    """Every envelope on the raw topic, from the beginning."""

    async def read() -> list[RawEnvelope]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            metadata = await consumer._client.fetch_all_metadata()  # noqa: SLF001
            partitions = [TopicPartition(topic, p) for p in metadata.partitions_for_topic(topic) or set()]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            expected = sum(ends[tp] - starts[tp] for tp in partitions)
            envelopes: list[RawEnvelope] = []
            deadline = time.monotonic() + 30
            while len(envelopes) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    envelopes += [RawEnvelope.from_bytes(r.value or b"") for r in records]
            return envelopes
        finally:
            await consumer.stop()

    return asyncio.run(read())


def backfill(pipeline: Pipeline, url: str) -> subprocess.CompletedProcess[str]:
    env = {**pipeline.env, "STRIPE_API_KEY": API_KEY, "REVSTREAM_STRIPE_API_BASE": url}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "revstream",
            "backfill",
            "stripe",
            "--since",
            "2026-01-01",
            "--page-size",
            "2",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_backfill_resumes_marks_events_and_never_double_counts(pipeline: Pipeline) -> None:
    events = backfill_events()
    webhooked = [events[0], events[4], events[7]]  # these also arrive by webhook: the overlap
    for event in webhooked:
        assert pipeline.post_stripe(json.dumps(event).encode()).status_code == 200

    # request 2 is rate limited; request 5 (the fourth page) hits an outage that ends the first run
    pages = RecordedPages(events, script={2: RATE_LIMITED, 5: OUTAGE})
    with stripe_api(pages) as url:
        first = backfill(pipeline, url)
        assert first.returncode == 1, first.stderr
        assert (
            "rate limited (429): waiting 1 s" in first.stderr and "run the same command again" in first.stderr
        )
        second = backfill(pipeline, url)
        assert second.returncode == 0, second.stderr
        assert "resuming after" in second.stderr and "done: 9 events published" in second.stderr
    assert API_KEY not in first.stderr + second.stderr
    newest_first = [e["id"] for e in sorted(events, key=lambda e: e["created"], reverse=True)]
    assert [r.get("starting_after") for r in pages.requests] == [
        None,  # page 1
        newest_first[1],  # 429
        newest_first[1],  # page 2, after the wait
        newest_first[3],  # page 3
        newest_first[5],  # outage: the first run stops here, cursor after newest_first[5]
        newest_first[5],  # the second run resumes from the saved cursor: page 4
        newest_first[7],  # page 5
    ]

    envelopes = read_raw(pipeline.services.kafka_bootstrap, pipeline.topics.raw)
    backfilled = [e.provider_event_id for e in envelopes if e.backfilled]
    assert sorted(backfilled) == sorted(newest_first)  # each event exactly once, marked backfilled
    assert sorted(e.provider_event_id for e in envelopes if not e.backfilled) == sorted(
        e["id"] for e in webhooked
    )

    pipeline.wait_for_totals(EXPECTED_TEST, livemode=False)
    pipeline.wait_for_totals(EXPECTED_LIVE, livemode=True)
    deadline = time.monotonic() + 60
    while pipeline.sql("SELECT count(*) FROM webhook_events")[0][0] != len(events):
        assert time.monotonic() < deadline, "webhook events not recorded"
        time.sleep(0.3)
    assert pipeline.sql("SELECT amount_minor, currency, livemode FROM orders") == [(999, "eur", True)]
