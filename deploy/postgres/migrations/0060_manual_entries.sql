-- Idempotency keys of manual / offline entries (POST /api/v1/manual-entries, CSV backfill).
-- A key belongs to its entity and is bound to the first body it was used with (body_sha256 of
-- the validated entry); see ingest/idempotency.py.
CREATE TABLE manual_entry_keys (
    entity            text        NOT NULL,
    idempotency_key   text        NOT NULL,
    body_sha256       text        NOT NULL,
    provider_event_id text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, idempotency_key)
);

-- The raw envelope of every authenticated request, archived from revenue.raw.v1 by the
-- PostgreSQL sink, so an operator can replay one event (`revstream events replay`) long after
-- Kafka's retention dropped it. 'received' = archived, not derived yet.
ALTER TABLE webhook_events ADD COLUMN raw_envelope bytea;
