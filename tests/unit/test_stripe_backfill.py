"""The Stripe Events API backfill against a local server serving recorded list pages: pagination,
429 + Retry-After, resume after an interruption, and the envelopes it publishes."""

import asyncio
import json
from pathlib import Path

import pytest
import stripe

from ingest.stripe_backfill import BackfillError, CursorFile, StripeEventsBackfill, retry_after_seconds
from revstream.settings import SettingsError
from revstream.stripe_backfill_cli import parse_since
from tests.stripe_api_server import API_KEY, FIRST_CREATED, RecordedPages, backfill_events, stripe_api
from tests.unit.test_ingest_http import RecordingPublisher

RATE_LIMITED = (
    429,
    {"Retry-After": "3"},
    {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
)
OUTAGE = (
    500,
    {"Stripe-Should-Retry": "false"},
    {"error": {"type": "api_error", "message": "Something went wrong"}},
)


class Run:
    def __init__(
        self, url: str, cursor_path: Path, publisher: RecordingPublisher, page_size: int = 2
    ) -> None:
        self.sleeps: list[float] = []
        self.lines: list[str] = []

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        self.backfill = StripeEventsBackfill(
            client=stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0),
            publisher=publisher,
            cursors=CursorFile(cursor_path),
            entity="acme",
            page_size=page_size,
            sleep=sleep,
            clock=lambda: 1_800_000_000,
            progress=self.lines.append,
        )

    def __call__(self, since: int = FIRST_CREATED, restart: bool = False):  # noqa: ANN204
        return asyncio.run(self.backfill.run(since, restart))


def newest_first_ids() -> list[str]:
    return [e["id"] for e in sorted(backfill_events(), key=lambda e: e["created"], reverse=True)]


def test_pages_are_followed_and_every_event_is_enveloped_as_backfilled(tmp_path: Path) -> None:
    pages, publisher = RecordedPages(backfill_events()), RecordingPublisher()
    with stripe_api(pages) as url:
        cursor = Run(url, tmp_path / "cursor.json", publisher)()
    assert cursor.complete and cursor.published == 9
    assert [e.provider_event_id for e, _ in publisher.published] == newest_first_ids()
    for envelope, key in publisher.published:
        assert envelope.backfilled and envelope.source.value == "stripe" and envelope.entity == "acme"
        event = json.loads(envelope.body)
        assert event["id"] == envelope.provider_event_id and envelope.event_type == event["type"]
        assert key == event["data"]["object"]["id"].encode()
    # 9 events in pages of 2: five requests, each after the last id of the one before
    assert len(pages.requests) == 5
    assert [r.get("starting_after") for r in pages.requests] == [None, *newest_first_ids()[1:8:2]]
    assert all(r["created[gte]"] == str(FIRST_CREATED) and r["limit"] == "2" for r in pages.requests)


def test_a_429_waits_for_its_retry_after_then_continues_without_gaps(tmp_path: Path) -> None:
    pages, publisher = RecordedPages(backfill_events(), script={2: RATE_LIMITED}), RecordingPublisher()
    with stripe_api(pages) as url:
        run = Run(url, tmp_path / "cursor.json", publisher)
        cursor = run()
    assert run.sleeps == [3.0] and any("rate limited" in line for line in run.lines)
    assert cursor.complete and [e.provider_event_id for e, _ in publisher.published] == newest_first_ids()
    assert pages.requests[2].get("starting_after") == newest_first_ids()[1]  # resumed from the cursor


def test_an_interrupted_run_resumes_after_the_last_acknowledged_event(tmp_path: Path) -> None:
    pages, publisher = RecordedPages(backfill_events(), script={3: OUTAGE}), RecordingPublisher()
    with stripe_api(pages) as url:
        with pytest.raises(BackfillError, match="run the same command again"):
            Run(url, tmp_path / "cursor.json", publisher)()
        assert len(publisher.published) == 4  # two pages acknowledged before the outage
        saved = json.loads((tmp_path / "cursor.json").read_text())
        assert saved["starting_after"] == newest_first_ids()[3] and not saved["complete"]
        second = Run(url, tmp_path / "cursor.json", publisher)
        cursor = second()
        assert pages.requests[3].get("starting_after") == newest_first_ids()[3]
        assert any("resuming after" in line for line in second.lines)
        again = Run(url, tmp_path / "cursor.json", publisher)
        again()  # complete: nothing more is listed
    assert cursor.complete and cursor.published == 9
    assert [e.provider_event_id for e, _ in publisher.published] == newest_first_ids()  # none twice
    assert len(pages.requests) == 6 and any("already complete" in line for line in again.lines)


def test_restart_ignores_the_saved_cursor(tmp_path: Path) -> None:
    pages, publisher = RecordedPages(backfill_events()), RecordingPublisher()
    with stripe_api(pages) as url:
        Run(url, tmp_path / "cursor.json", publisher)()
        Run(url, tmp_path / "cursor.json", publisher)(restart=True)
    assert len(publisher.published) == 18


def test_since_filters_and_a_refused_key_stops_without_leaking_it(tmp_path: Path) -> None:
    pages, publisher = RecordedPages(backfill_events()), RecordingPublisher()
    with stripe_api(pages) as url:
        Run(url, tmp_path / "a.json", publisher)(since=FIRST_CREATED + 7)
        assert [e.provider_event_id for e, _ in publisher.published] == newest_first_ids()[:2]
        run = Run(url, tmp_path / "b.json", publisher)
        run.backfill.client = stripe.StripeClient("sk_test_wrong_key_123", base_addresses={"api": url})
        with pytest.raises(BackfillError) as refused:
            run()
    assert "AuthenticationError" in str(refused.value) and "sk_test" not in str(refused.value)


def test_a_broker_outage_stops_with_the_cursor_before_the_unacknowledged_batch(tmp_path: Path) -> None:
    pages = RecordedPages(backfill_events())
    with stripe_api(pages) as url:
        with pytest.raises(BackfillError, match="broker"):
            Run(url, tmp_path / "cursor.json", RecordingPublisher(fail=True))()
    assert not (tmp_path / "cursor.json").exists()


def test_retry_after_parsing() -> None:
    assert retry_after_seconds({"retry-after": "2"}, 1, 60) == 2
    assert retry_after_seconds({"Retry-After": "600"}, 1, 60) == 60
    assert retry_after_seconds({}, 3, 60) == 4  # backoff 1, 2, 4 ...
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1, 60) == 1


def test_since_parsing() -> None:
    assert parse_since("2026-01-01", now=2e9) == FIRST_CREATED
    assert parse_since("2026-01-01T00:00:10Z", now=2e9) == FIRST_CREATED + 10
    with pytest.raises(SettingsError):
        parse_since("last week", now=2e9)
    with pytest.raises(SettingsError):
        parse_since("2099-01-01", now=2e9)
