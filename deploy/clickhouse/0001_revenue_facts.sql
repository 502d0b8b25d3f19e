-- Revenue facts: every version of every revenue record, as the processors derived it.
--
-- Exact under replay: rows are keyed by the deterministic record_id and ReplacingMergeTree
-- keeps the highest `version` per key, so duplicates and re-deliveries collapse to one row.
-- Reads that need exact totals use FINAL (or argMax per record_id): unmerged parts may still
-- hold superseded versions, and a sum over raw rows would count them.
--
-- No partition key: ReplacingMergeTree only collapses rows within one partition, and a record's
-- versions can carry different event times, so partitioning by time could split them.
-- ORDER BY record_id is the dedupe key itself.
CREATE TABLE IF NOT EXISTS revenue_facts
(
    record_id         String,
    kind              LowCardinality(String),
    source            LowCardinality(String),
    entity            LowCardinality(String),
    payment_key       String,
    amount_minor      Int64,
    currency          LowCardinality(String),
    livemode          Bool,
    counted           Bool,
    status            LowCardinality(String),
    customer_id       String,
    occurred_at       DateTime64(3, 'UTC'),
    version           UInt64,
    source_event_id   String,
    source_event_type LowCardinality(String),
    inserted_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY record_id
