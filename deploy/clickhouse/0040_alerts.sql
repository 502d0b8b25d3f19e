-- Alert history: every alert the anomaly processor raised (relayed through revenue.alerts.v1).
--
-- Exact under replay: the relay is at least once, so an alert may arrive twice, and rows are keyed
-- by the deterministic alert_id and ReplacingMergeTree keeps one per key. Read with FINAL.
-- The lifecycle (acknowledged, resolved...) lives in PostgreSQL's alerts table.
--
-- ORDER BY (rule, window_start, alert_id): history queries filter by rule and time, and alert_id
-- last makes the sorting key the dedupe key. Partitioned by month of the window: an alert's
-- window never changes, so its copies always land in the same partition and still collapse.
CREATE TABLE IF NOT EXISTS revenue_alerts
(
    alert_id     String,
    rule         LowCardinality(String),
    severity     LowCardinality(String),
    entity       LowCardinality(String),
    currency     LowCardinality(String),
    livemode     Bool,
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    title        String,
    observed     Int64,
    expected     Nullable(Int64),
    unit         LowCardinality(String),
    details      String,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (rule, window_start, alert_id)
