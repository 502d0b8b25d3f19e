"""Idempotency keys for operator writes, kept in PostgreSQL so they outlive a restart.

A key is bound to the first body it was used with (by a hash of the validated, canonical
entry): the same key with the same body is the same request and gets the same answer (the
envelope is published again, which dedupe makes harmless, so a request that got a 503 the
first time completes on retry); the same key with another body is a conflict, refused before
anything is published. The claim is one INSERT ... ON CONFLICT, so two concurrent requests with
one key and different bodies cannot both publish.
"""

from enum import StrEnum

from psycopg_pool import AsyncConnectionPool

CLAIM = """
INSERT INTO manual_entry_keys (entity, idempotency_key, body_sha256, provider_event_id)
VALUES (%s, %s, %s, %s)
ON CONFLICT (entity, idempotency_key) DO NOTHING
RETURNING body_sha256
"""
EXISTING = "SELECT body_sha256 FROM manual_entry_keys WHERE entity = %s AND idempotency_key = %s"


class Claim(StrEnum):
    NEW = "new"  # first use of the key
    REPEAT = "repeat"  # the key was used before with this same body
    CONFLICT = "conflict"  # the key was used before with a different body


class IdempotencyKeys:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def claim(self, entity: str, key: str, body_sha256: str, provider_event_id: str) -> Claim:
        async with self._pool.connection() as conn:
            inserted = await (
                await conn.execute(CLAIM, (entity, key, body_sha256, provider_event_id))
            ).fetchone()
            if inserted is not None:
                return Claim.NEW
            row = await (await conn.execute(EXISTING, (entity, key))).fetchone()
        return Claim.REPEAT if row is not None and row[0] == body_sha256 else Claim.CONFLICT
