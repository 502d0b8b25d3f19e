-- Audit chain: one receipt per money-moving change, hash-chained, with a Merkle anchor every
-- 256 receipts. Written by sinks/postgres/audit.py in the same transaction as the change; the
-- encoding and the tree are documented in sinks/postgres/receipts.py; `revstream audit verify`
-- recomputes everything.

-- The chain head: one row, locked FOR UPDATE by every writing transaction, so receipts get
-- gapless sequence numbers from one writer at a time (a rolled-back transaction takes its
-- receipts and its head update with it).
CREATE TABLE audit_chain_head (
    id        smallint PRIMARY KEY CHECK (id = 1),
    last_seq  bigint   NOT NULL CHECK (last_seq >= 0),
    last_hash text     NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$')
);
INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, 0, repeat('0', 64));

CREATE TABLE audit_receipts (
    seq             bigint      PRIMARY KEY CHECK (seq > 0),
    record_type     text        NOT NULL CHECK (record_type IN ('ledger', 'order')),
    record_id       text        NOT NULL,
    version         bigint      NOT NULL,
    change          text        NOT NULL CHECK (change IN ('created', 'changed')),
    kind            text        NOT NULL,
    entity          text        NOT NULL,
    livemode        boolean     NOT NULL,
    amount_minor    bigint      NOT NULL,
    currency        text        NOT NULL,
    counted         boolean,             -- ledger rows only
    status          text        NOT NULL,
    refunded_minor  bigint,              -- orders only
    source_event_id text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash            text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX audit_receipts_record_idx ON audit_receipts (record_id, seq);
CREATE INDEX audit_receipts_event_idx ON audit_receipts (source_event_id);

CREATE TABLE audit_anchors (
    first_seq  bigint      PRIMARY KEY,
    last_seq   bigint      NOT NULL UNIQUE CHECK (last_seq >= first_seq),
    root       text        NOT NULL CHECK (root ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: the pipeline never updates or deletes receipts or anchors. This stops mistakes,
-- not a superuser (who can disable triggers): the hashes are what detect a deliberate edit.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER audit_receipts_append_only BEFORE UPDATE OR DELETE ON audit_receipts
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_receipts_no_truncate BEFORE TRUNCATE ON audit_receipts
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
