-- revstream state store, version 1: webhook events, the revenue ledger and orders.
-- Every write is an idempotent upsert guarded by `version` (event time + deterministic
-- tie-break), so replays, duplicates and reordering leave the same final state.

CREATE TABLE webhook_events (
    source            text        NOT NULL,
    provider_event_id text        NOT NULL,
    event_type        text        NOT NULL,
    entity            text        NOT NULL,
    livemode          boolean     NOT NULL,
    received_at       timestamptz NOT NULL,
    event_created_at  timestamptz,
    state             text        NOT NULL CHECK (state IN ('received', 'processed', 'ignored', 'failed')),
    error             text,
    attempts          integer     NOT NULL DEFAULT 1,
    processed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, provider_event_id)
);
CREATE INDEX webhook_events_state_idx ON webhook_events (state, received_at);

CREATE TABLE revenue_ledger (
    record_id         text        PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('payment', 'refund')),
    source            text        NOT NULL,
    entity            text        NOT NULL,
    payment_key       text        NOT NULL,
    amount_minor      bigint      NOT NULL CHECK (amount_minor >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    livemode          boolean     NOT NULL,
    counted           boolean     NOT NULL,
    status            text        NOT NULL,
    customer_id       text,
    occurred_at       timestamptz NOT NULL,
    version           bigint      NOT NULL,
    source_event_id   text        NOT NULL,
    source_event_type text        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revenue_ledger_payment_idx ON revenue_ledger (payment_key);

CREATE TABLE orders (
    order_id        text        PRIMARY KEY,
    source          text        NOT NULL,
    entity          text        NOT NULL,
    payment_key     text        NOT NULL,
    customer_id     text,
    amount_minor    bigint      NOT NULL CHECK (amount_minor >= 0),
    currency        text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    livemode        boolean     NOT NULL,
    -- Derived from the ledger in the same transaction as each refund (see sinks/postgres/store.py).
    refunded_minor  bigint      NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    status          text        NOT NULL DEFAULT 'paid'
                                CHECK (status IN ('paid', 'partially_refunded', 'refunded')),
    occurred_at     timestamptz NOT NULL,
    version         bigint      NOT NULL,
    source_event_id text        NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_payment_idx ON orders (payment_key);
