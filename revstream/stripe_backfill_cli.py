"""`revstream backfill stripe --since DATE`: Stripe's Events API -> the raw topic (see
ingest/stripe_backfill.py for the guarantees). Needs STRIPE_API_KEY and KAFKA_BOOTSTRAP_SERVERS.

The cursor lives in <REVSTREAM_DATA_DIR>/backfill/stripe-since-<unix>.json: the same command
after an interruption continues where the last acknowledged batch ended.
"""

import asyncio
import sys
import time
from datetime import UTC, datetime

import stripe
from aiokafka.errors import KafkaError

from ingest.publisher import KafkaRawPublisher
from ingest.stripe_backfill import MAX_PAGE_SIZE, BackfillError, CursorFile, StripeEventsBackfill
from revstream.settings import Settings, SettingsError
from revstream.wiring import make_producer, topics_for


def parse_since(value: str, now: float | None = None) -> int:
    """YYYY-MM-DD (UTC midnight) or an ISO-8601 time, as unix seconds; not in the future."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"--since {value!r} is not a date: use YYYY-MM-DD or 2026-01-31T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    since = int(parsed.timestamp())
    if since > (time.time() if now is None else now):
        raise SettingsError(f"--since {value!r} is in the future")
    return since


def _progress(line: str) -> None:
    print(f"stripe backfill: {line}", file=sys.stderr, flush=True)


async def _run(settings: Settings, since: int, restart: bool, page_size: int) -> int:
    assert settings.stripe_api_key is not None
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base},
        max_network_retries=2,  # connection errors and 5xx; 429s are handled (and shown) by the backfill
    )
    publisher = KafkaRawPublisher(
        lambda: make_producer(settings, "backfill-stripe"),
        topics_for(settings).raw,
        settings.publish_timeout_ms / 1000,
    )
    try:
        await publisher.start()
    except KafkaError as exc:
        await publisher.stop()
        _progress(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} ({type(exc).__name__}); nothing published"
        )
        return 1
    try:
        cursors = CursorFile(settings.resolved_data_dir / "backfill" / f"stripe-since-{since}.json")
        backfill = StripeEventsBackfill(
            client=client,
            publisher=publisher,
            cursors=cursors,
            entity=settings.entity,
            page_size=page_size,
            progress=_progress,
        )
        await backfill.run(since, restart=restart)
        return 0
    except BackfillError as exc:
        _progress(f"stopped: {exc}")
        return 1
    finally:
        await publisher.stop()


def backfill_stripe(
    settings: Settings, since: str, restart: bool = False, page_size: int = MAX_PAGE_SIZE
) -> int:
    settings.require("STRIPE_API_KEY", "KAFKA_BOOTSTRAP_SERVERS")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SettingsError(f"--page-size must be 1..{MAX_PAGE_SIZE}")
    return asyncio.run(_run(settings, parse_since(since), restart, page_size))
