-- Anomaly detection state (processors/anomalies): what was counted, hourly buckets, the watermark.
--
-- Exact under replay: anomaly_observations holds each counted record id once (forward-only by
-- version), and bucket counters change only by the delta between its stored and its newer
-- version, in the same transaction. A re-delivered record changes nothing.

CREATE TABLE anomaly_observations (
    record_id    text        PRIMARY KEY,  -- ledger record id, or event:<source>:<provider event id>
    version      bigint      NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('payment', 'refund', 'dispute', 'failed_payment')),
    entity       text        NOT NULL,
    currency     text        NOT NULL,     -- '' for disputes and failures (no money on the event)
    livemode     boolean     NOT NULL,
    occurred_at  timestamptz NOT NULL,
    amount_minor bigint      NOT NULL CHECK (amount_minor >= 0),
    counted      boolean     NOT NULL,
    customer_id  text
);
-- Duplicate-charge lookups: same customer, currency and amount close in time.
CREATE INDEX anomaly_observations_charge_idx
    ON anomaly_observations (customer_id, currency, amount_minor, occurred_at)
    WHERE kind = 'payment' AND customer_id IS NOT NULL;

CREATE TABLE anomaly_buckets (
    entity         text        NOT NULL,
    currency       text        NOT NULL,
    livemode       boolean     NOT NULL,
    hour           timestamptz NOT NULL,
    payments       bigint      NOT NULL DEFAULT 0,
    payments_minor bigint      NOT NULL DEFAULT 0,
    refunds        bigint      NOT NULL DEFAULT 0,
    refunds_minor  bigint      NOT NULL DEFAULT 0,
    disputes       bigint      NOT NULL DEFAULT 0,
    failed         bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (entity, currency, livemode, hour)
);
CREATE INDEX anomaly_buckets_hour_idx ON anomaly_buckets (hour);

-- When each series was first seen: baselines only count weeks after it existed.
CREATE TABLE anomaly_series (
    entity     text        NOT NULL,
    currency   text        NOT NULL,
    livemode   boolean     NOT NULL,
    first_hour timestamptz NOT NULL,
    PRIMARY KEY (entity, currency, livemode)
);

-- Event-time progress per topic partition; the watermark is the minimum over active partitions.
CREATE TABLE anomaly_partitions (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    max_event_at timestamptz NOT NULL,
    seen_at      timestamptz NOT NULL,  -- processing time, to let an idle partition stop holding back
    PRIMARY KEY (topic, partition)
);

-- One row: every hour before closed_through has been judged. Also the processors' mutex
-- (SELECT ... FOR UPDATE), so replicas apply batches one at a time.
CREATE TABLE anomaly_watermark (
    id             smallint    PRIMARY KEY CHECK (id = 1),
    closed_through timestamptz
);
INSERT INTO anomaly_watermark (id, closed_through) VALUES (1, NULL);
