"""`revstream run slack`: posts the outbox to SLACK_WEBHOOK_URL, one message at a time, in order.

One sender per database: it holds a PostgreSQL advisory lock while it runs (a second instance
waits as a standby), because recovering `sending` rows is only safe when no other sender is
mid-post. A stop signal lets the post in flight finish and be recorded before exit, so a
graceful restart neither loses nor repeats a message.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from psycopg import AsyncConnection

from revstream.alert_metrics import count_notification
from sinks.slack.outbox import Outbox
from sinks.slack.poster import post

log = logging.getLogger("revstream.slack")

LOCK_ID = 0x736C61636B  # "slack"
POLL_S = 1.0
HTTP_TIMEOUT_S = 10.0


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        pass


async def _acquire(database_url: str, stop: asyncio.Event) -> AsyncConnection | None:
    conn = await AsyncConnection.connect(database_url, autocommit=True)
    waiting = False
    while not stop.is_set():
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_ID,))
        row = await cur.fetchone()
        if row and row[0]:
            return conn
        if not waiting:
            log.info("another slack sender holds the lock; standing by")
            waiting = True
        await _sleep(stop, 5)
    await conn.close()
    return None


async def run_sender(
    outbox: Outbox,
    database_url: str,
    webhook_url: str,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_s: float = POLL_S,
) -> None:
    lock = await _acquire(database_url, stop)
    if lock is None:
        return
    try:
        uncertain = await outbox.recover()
        for message_id in uncertain:
            log.warning(
                "%s was being sent when the sender stopped: marked uncertain, not re-sent", message_id
            )
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            log.info("slack sender running")
            while not stop.is_set():
                claimed = await outbox.claim(clock())
                if claimed is None:
                    await _sleep(stop, poll_s)
                    continue
                if claimed.message is None:
                    log.info("%s not posted (expired or its subject is missing)", claimed.message_id)
                    continue
                # Claimed and committed as `sending`; the POST and its recording are not interrupted
                # by a stop signal (the loop only checks `stop` between messages).
                outcome = await post(client, webhook_url, claimed.message, claimed.attempts)
                state = await outbox.finish(claimed, outcome, clock())
                count_notification("slack", state)
                if state == "sent":
                    log.info("%s posted", claimed.message_id)
                else:
                    log.warning("%s: %s -> %s", claimed.message_id, outcome.error, state)
                if outcome.pause_all and outcome.retry_in is not None:
                    # Slack rate-limits the webhook, not the message: wait before any other post.
                    await _sleep(stop, outcome.retry_in.total_seconds())
    finally:
        await lock.close()  # closing the session releases the advisory lock


def max_age(hours: int) -> timedelta:
    return timedelta(hours=hours)
