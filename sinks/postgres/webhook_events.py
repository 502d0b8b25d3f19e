"""The webhook event records: what arrived, what became of it, and the bytes to replay it.

Two writers, one table (webhook_events):
- RawArchive (in the PostgreSQL sink service) stores the raw envelope of every authenticated
  request from revenue.raw.v1. A new row starts in state 'received'; an existing row only gains
  its envelope (the processor's outcome is never overwritten by the archive).
- PostgresStore (store.py) records the processor's outcome (processed / ignored / failed).
WebhookEvents is the operator's view: list, look up, and claim an event for replay.
"""

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from schemas.envelope import RawEnvelope

# A batch in one statement (one array per column), each key once, in key order.
ARCHIVE = """
INSERT INTO webhook_events
    (source, provider_event_id, event_type, entity, livemode, received_at, state, raw_envelope, attempts)
SELECT source, provider_event_id, event_type, entity, livemode, received_at, 'received', raw_envelope, 1
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::boolean[], %b::timestamptz[], %b::bytea[])
    AS a(source, provider_event_id, event_type, entity, livemode, received_at, raw_envelope)
ON CONFLICT (source, provider_event_id) DO UPDATE
SET raw_envelope = EXCLUDED.raw_envelope
WHERE webhook_events.raw_envelope IS NULL
"""

LIST_COLUMNS = (
    "source, provider_event_id, event_type, entity, livemode, received_at, event_created_at, "
    "state, error, attempts, processed_at, raw_envelope IS NOT NULL AS replayable"
)

# Claiming a replay counts the attempt; the attempt number makes the replayed envelope distinct
# from the original for the processor's in-memory dedupe, while derived ids stay the same.
TAKE_FOR_REPLAY = """
UPDATE webhook_events SET attempts = attempts + 1
WHERE source = %s AND provider_event_id = %s AND raw_envelope IS NOT NULL
RETURNING raw_envelope, attempts
"""


class RawArchive:
    """A BatchStore for sinks.consumer.register_sink over the raw topic."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._buffer: dict[tuple[str, str], tuple[RawEnvelope, bytes]] = {}

    @staticmethod
    def decode(body: bytes) -> tuple[RawEnvelope, bytes] | None:
        """The envelope and the bytes to archive, or None if not an envelope: the processor
        dead-letters those; the archive skips them rather than stalling on a message it can never
        store. An original delivery (replay 0) is archived as the bytes it came in, validated; an
        operator's replay as the same envelope with replay 0 (the archive keeps originals)."""
        try:
            envelope = RawEnvelope.from_bytes(body)
        except ValidationError:
            return None
        if envelope.replay:
            return envelope, envelope.model_copy(update={"replay": 0}).to_bytes()
        return envelope, body

    def add(self, decoded: tuple[RawEnvelope, bytes] | None) -> None:
        if decoded is not None:
            envelope = decoded[0]
            self._buffer.setdefault((envelope.source.value, envelope.provider_event_id), decoded)

    async def flush(self) -> int:
        try:
            if not self._buffer:
                return 0
            # One lock order with the state store (store.py): by (source, provider_event_id).
            archived = [self._buffer[key] for key in sorted(self._buffer)]
            columns = [
                [e.source.value for e, _ in archived],
                [e.provider_event_id for e, _ in archived],
                [e.event_type for e, _ in archived],
                [e.entity for e, _ in archived],
                [e.livemode for e, _ in archived],
                [e.received_at for e, _ in archived],
                [raw for _, raw in archived],
            ]
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.execute(ARCHIVE, columns)
            return len(archived)
        finally:
            self._buffer.clear()


class WebhookEvents:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def list(
        self,
        *,
        state: str | None = None,
        source: str | None = None,
        event_type: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the (received_at, provider_event_id) of the last row seen."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("state", state), ("source", source), ("event_type", event_type)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if before is not None:
            where.append("(received_at, provider_event_id) < (%s, %s)")
            params += [before[0], before[1]]
        query = f"SELECT {LIST_COLUMNS} FROM webhook_events"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY received_at DESC, provider_event_id DESC LIMIT %s"
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, [*params, limit])
            return list(await cur.fetchall())

    async def get(self, source: str, provider_event_id: str) -> dict[str, Any] | None:
        query = f"SELECT {LIST_COLUMNS} FROM webhook_events WHERE source = %s AND provider_event_id = %s"
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, (source, provider_event_id))
            return await cur.fetchone()

    async def take_for_replay(self, source: str, provider_event_id: str) -> RawEnvelope | None:
        """The archived envelope marked as replay attempt N, or None if nothing is archived."""
        async with self._pool.connection() as conn:
            row = await (await conn.execute(TAKE_FOR_REPLAY, (source, provider_event_id))).fetchone()
        if row is None:
            return None
        raw, attempts = row
        return RawEnvelope.from_bytes(bytes(raw)).model_copy(update={"replay": attempts - 1})
