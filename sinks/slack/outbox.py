"""The slack_outbox state machine (see deploy/postgres/migrations/0043_slack_outbox.sql).

Claiming a message (pending -> sending) commits BEFORE the POST, and the answer is recorded
after it. A crash between the two leaves the row in `sending`; the next start marks it
`uncertain` and never re-sends it. That window is the only place a message can be lost, and no
message is ever posted twice.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas.alerts import Alert
from sinks.slack.blocks import alert_message, summary_message
from sinks.slack.poster import Outcome

MAX_ATTEMPTS = 8
_ALERT_COLUMNS = tuple(Alert.model_fields)


@dataclass(frozen=True)
class Claimed:
    message_id: str
    attempts: int
    message: dict[str, Any] | None  # None: settled without posting (expired, missing); ask again


class Outbox:
    def __init__(self, pool: AsyncConnectionPool, max_age: timedelta) -> None:
        self._pool = pool
        self._max_age = max_age

    async def recover(self) -> list[str]:
        """Rows left `sending` by a sender that stopped mid-post become `uncertain` (not re-sent)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE slack_outbox SET state = 'uncertain', "
                "last_error = 'the sender stopped before recording the answer; not re-sent' "
                "WHERE state = 'sending' RETURNING message_id"
            )
            return [row[0] for row in await cur.fetchall()]

    async def claim(self, now: datetime) -> Claimed | None:
        """The next due message, marked `sending` (committed) with its Block Kit body."""
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(
                "SELECT message_id, kind, ref, subject_time, attempts FROM slack_outbox "
                "WHERE state = 'pending' AND next_attempt_at <= %s "
                "ORDER BY created_at, message_id LIMIT 1 FOR UPDATE SKIP LOCKED",  # oldest first: a retried message keeps its place
                (now,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            message_id, kind, ref, subject_time, attempts = row
            if now - subject_time > self._max_age:
                await cur.execute(
                    "UPDATE slack_outbox SET state = 'expired', last_error = 'older than "
                    "REVSTREAM_SLACK_MAX_AGE_HOURS when its turn came' WHERE message_id = %s",
                    (message_id,),
                )
                return Claimed(message_id, attempts, None)
            message = await self._message(cur, kind, ref)
            if message is None:
                await cur.execute(
                    "UPDATE slack_outbox SET state = 'failed', last_error = 'referenced row is missing' "
                    "WHERE message_id = %s",
                    (message_id,),
                )
                return Claimed(message_id, attempts, None)
            await cur.execute(
                "UPDATE slack_outbox SET state = 'sending', attempts = attempts + 1 WHERE message_id = %s",
                (message_id,),
            )
            return Claimed(message_id, attempts + 1, message)

    async def _message(self, cur: Any, kind: str, ref: str) -> dict[str, Any] | None:
        if kind == "alert":
            await cur.execute(f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts WHERE alert_id = %s", (ref,))
            row = await cur.fetchone()
            return (
                alert_message(Alert.model_validate(dict(zip(_ALERT_COLUMNS, row, strict=True))))
                if row
                else None
            )
        await cur.execute("SELECT body FROM revenue_summaries WHERE summary_id = %s", (ref,))
        row = await cur.fetchone()
        return summary_message(row[0]) if row else None

    async def finish(self, claimed: Claimed, outcome: Outcome, now: datetime) -> str:
        """Record the answer; returns the row's new state."""
        state, next_at = outcome.state, now
        if state == "retry":
            if claimed.attempts >= MAX_ATTEMPTS:
                state = "failed"
            else:
                state, next_at = "pending", now + (outcome.retry_in or timedelta(0))
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE slack_outbox SET state = %s, last_error = %s, next_attempt_at = %s, "
                "sent_at = CASE WHEN %s = 'sent' THEN now() ELSE sent_at END WHERE message_id = %s",
                (state, outcome.error, next_at, state, claimed.message_id),
            )
        return state
