"""Backfill from Stripe's Events API onto the raw topic, resumably.

Events are listed newest first (Stripe's order) with the library's auto-pagination and published
as RawEnvelopes exactly like webhooks, but marked `backfilled=True`. The provider event id is the
Stripe event id, so the processor's dedupe and the stores' deterministic upserts make overlaps with
webhooks (and with an earlier, interrupted backfill) harmless.

Guarantees:
- At least once: the cursor (the last event id whose envelope the broker acknowledged) is saved
  only after the acks, so an interrupted run continues after it and at most re-publishes the
  batch in flight; the duplicates dedupe.
- Rate limits: a 429 waits for its Retry-After (or an exponential backoff), then resumes from the
  cursor; after `max_rate_limit_waits` consecutive 429s the run stops with the cursor saved.
- The API key is never logged or printed; Stripe errors are reported by type and HTTP status only.
"""

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import stripe

from ingest.publisher import PublishUnavailable, RawPublisher
from ingest.rejections import Rejected
from ingest.stripe_webhook import read_event
from schemas.envelope import RawEnvelope, Source

MAX_PAGE_SIZE = 100  # Stripe's largest `limit`


class BackfillError(Exception):
    """The run stopped; the message is safe to print and says how to continue."""


@dataclass
class Cursor:
    """Where a backfill of events created at or after `since` (unix seconds) stands."""

    since: int
    starting_after: str | None = None
    published: int = 0
    complete: bool = False


class CursorFile:
    """A cursor in one JSON file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, since: int) -> Cursor:
        try:
            data = json.loads(self.path.read_text())
            cursor = Cursor(**data)
        except FileNotFoundError:
            return Cursor(since=since)
        except (ValueError, TypeError):
            raise BackfillError(
                f"cursor file {self.path} is unreadable: delete it or pass --restart"
            ) from None
        if cursor.since != since:
            return Cursor(since=since)
        return cursor

    def save(self, cursor: Cursor) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump(asdict(cursor), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


def retry_after_seconds(headers: Mapping[str, str] | None, attempt: int, cap_s: float) -> float:
    """Retry-After in seconds when the server sent one, else exponential backoff (1, 2, 4 ... s)."""
    value = None
    for key, item in (headers or {}).items():
        if key.lower() == "retry-after":
            value = item
    try:
        seconds = float(value) if value is not None else 2.0 ** (attempt - 1)
    except ValueError:  # an HTTP-date: fall back to backoff rather than trusting our clock
        seconds = 2.0 ** (attempt - 1)
    return min(max(seconds, 0.0), cap_s)


def envelope_for(event: dict[str, Any], entity: str, received_at: datetime) -> tuple[RawEnvelope, bytes]:
    """The raw envelope of one listed event, and its Kafka key (the object id, as webhooks use)."""
    body = json.dumps(event, separators=(",", ":")).encode()
    try:
        facts = read_event(body)
    except Rejected as rejected:
        raise BackfillError(f"Stripe listed something that is not an event: {rejected.message}") from None
    envelope = RawEnvelope(
        source=Source.STRIPE,
        endpoint="backfill",
        entity=entity,
        provider_event_id=facts.event_id,
        event_type=facts.event_type,
        livemode=facts.livemode,
        received_at=received_at,
        content_type="application/json",
        body=body,
        backfilled=True,
    )
    return envelope, (facts.object_id or facts.event_id).encode()


@dataclass
class StripeEventsBackfill:
    """One backfill run. Dependencies are injected so tests drive it with a recorded-pages server."""

    client: stripe.StripeClient
    publisher: RawPublisher
    cursors: CursorFile
    entity: str
    page_size: int = MAX_PAGE_SIZE
    max_rate_limit_waits: int = 8
    max_wait_s: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    progress: Callable[[str], None] = print

    async def run(self, since: int, restart: bool = False) -> Cursor:
        cursor = Cursor(since=since) if restart else self.cursors.load(since)
        if cursor.complete:
            self.progress(
                f"already complete: {cursor.published} events published (use --restart to run again)"
            )
            return cursor
        if cursor.starting_after:
            self.progress(
                f"resuming after {cursor.starting_after} ({cursor.published} events already published)"
            )
        waits = 0
        while True:
            pending: list[dict[str, Any]] = []
            try:
                params: dict[str, Any] = {"limit": self.page_size, "created": {"gte": since}}
                if cursor.starting_after:
                    params["starting_after"] = cursor.starting_after
                page = await self.client.v1.events.list_async(params)  # type: ignore[arg-type]
                async for event in page.auto_paging_iter():
                    pending.append(event.to_dict(for_json=True))
                    if len(pending) >= self.page_size:
                        await self._publish(pending, cursor)
                        waits = 0
                await self._publish(pending, cursor)
            except stripe.RateLimitError as exc:
                await self._publish(pending, cursor)  # keep what was listed before the 429
                waits += 1
                if waits > self.max_rate_limit_waits:
                    raise BackfillError(
                        f"still rate limited after {self.max_rate_limit_waits} waits; "
                        f"{self._resume_hint(cursor)}"
                    ) from None
                delay = retry_after_seconds(exc.headers, waits, self.max_wait_s)
                self.progress(f"rate limited (429): waiting {delay:g} s, then resuming")
                await self.sleep(delay)
                continue
            except stripe.StripeError as exc:
                await self._publish(pending, cursor)
                status = f" (HTTP {exc.http_status})" if exc.http_status else ""
                raise BackfillError(
                    f"Stripe API error {type(exc).__name__}{status}; {self._resume_hint(cursor)}"
                ) from None
            cursor.complete = True
            self.cursors.save(cursor)
            self.progress(f"done: {cursor.published} events published")
            return cursor

    async def _publish(self, events: list[dict[str, Any]], cursor: Cursor) -> None:
        """Publish a batch, wait for every ack, and only then move the cursor past it."""
        if not events:
            return
        received_at = datetime.fromtimestamp(self.clock(), UTC)
        sends = [envelope_for(event, self.entity, received_at) for event in events]
        try:
            await asyncio.gather(*(self.publisher.publish(envelope, key=key) for envelope, key in sends))
        except PublishUnavailable:
            raise BackfillError(
                f"the broker did not acknowledge in time; {self._resume_hint(cursor)}"
            ) from None
        cursor.starting_after = sends[-1][0].provider_event_id
        cursor.published += len(sends)
        self.cursors.save(cursor)  # acknowledged, then remembered: a crash before this re-publishes
        events.clear()
        self.progress(f"{cursor.published} events published (cursor {cursor.starting_after})")

    def _resume_hint(self, cursor: Cursor) -> str:
        return f"{cursor.published} events published so far; run the same command again to resume"
