-- Analytics on top of revenue_facts: the deduplicated current state, hourly aggregates and FX rates.
--
-- Exact under replays and duplicate inserts: every aggregate here is computed at read time from
-- revenue_facts FINAL, i.e. from exactly one row per record_id (its highest version). Nothing is
-- pre-aggregated at insert time on purpose: a materialized view on a ReplacingMergeTree sees every
-- inserted row, superseded versions and duplicate deliveries included, so it would double count.
-- WHERE clauses on these views apply after FINAL (never PREWHERE), so a record is filtered by its
-- latest version: a payment is counted once, at the event time of its newest version.
--
-- Keys: revenue_facts stays ORDER BY record_id with no partition (see 0001). Its versions move in
-- time (checkout.session.completed, then charge.succeeded seconds or days later), so a time-based
-- partition or sort key would split one record's versions and FINAL could no longer collapse them.
-- The API's queries are all "one livemode, a time range, grouped by time bucket" scans over the
-- deduplicated set, which at this table's size is one pass over the data either way.

-- Filled by derivations that know the product: Gumroad (product_id) and manual entries / CSV
-- (`product`). Stripe payment events carry no line items, so Stripe facts have NULL (unknown).
-- Adding a column is metadata-only and keeps 0001's semantics.
ALTER TABLE revenue_facts ADD COLUMN IF NOT EXISTS product Nullable(String);

-- One row per revenue record, its latest version, with the money measures the API sums.
-- gross: counted payments. disputes: counted disputes (money out). failed payments are counted,
-- never revenue. net = gross - refunds - disputes.
-- refunds follow the ledger's rule (sinks/clickhouse/queries.py): per payment and currency, refunds
-- are max(individual refunds, the charges' refunded totals), so a refund reported both ways counts
-- once. Here each individual refund counts at its own time, and whatever the charge totals add on
-- top of them counts once, at the newest `refunded_total` record of that payment. (The all-time
-- totals also cap refunds at a known charge, which only differs for refunds PostgreSQL refused.)
CREATE OR REPLACE VIEW revenue_facts_current AS
SELECT
    record_id,
    kind,
    source,
    entity,
    payment_key,
    amount_minor,
    currency,
    livemode,
    counted,
    status,
    nullIf(customer_id, '') AS customer_id,
    nullIf(product, '') AS product,
    occurred_at,
    version,
    source_event_id,
    source_event_type,
    if(kind = 'payment' AND counted, amount_minor, 0) AS gross_minor,
    multiIf(
        kind = 'refund' AND counted, amount_minor,
        kind = 'refunded_total' AND counted AND newest_total = 1,
            greatest(toInt64(0), toInt64(payment_totals) - toInt64(payment_listed)),
        0) AS refund_minor,
    if(kind = 'dispute' AND counted, amount_minor, 0) AS dispute_minor,
    toInt64(gross_minor) - toInt64(refund_minor) - toInt64(dispute_minor) AS net_minor,
    kind = 'payment' AND counted AS is_payment,
    refund_minor > 0 AS is_refund,
    kind = 'dispute' AS is_dispute,
    kind = 'failed_payment' AS is_failed_payment
FROM
(
    SELECT
        *,
        sumIf(amount_minor, kind = 'refund' AND counted) OVER per_payment AS payment_listed,
        sumIf(amount_minor, kind = 'refunded_total' AND counted) OVER per_payment AS payment_totals,
        row_number() OVER (PARTITION BY payment_key, currency, kind ORDER BY occurred_at DESC, record_id DESC)
            AS newest_total
    FROM revenue_facts FINAL
    WINDOW per_payment AS (PARTITION BY payment_key, currency)
);

CREATE OR REPLACE VIEW revenue_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    livemode,
    source,
    entity,
    currency,
    product,
    sum(gross_minor) AS gross_minor,
    sum(refund_minor) AS refund_minor,
    sum(dispute_minor) AS dispute_minor,
    sum(net_minor) AS net_minor,
    countIf(is_payment) AS payments,
    countIf(is_refund) AS refunds,
    countIf(is_dispute) AS disputes,
    countIf(is_failed_payment) AS failed_payments
FROM revenue_facts_current
GROUP BY hour, livemode, source, entity, currency, product;

-- Dated FX rates that operators maintain (`revstream fx load FILE`): 1 `base` = `rate` `quote`,
-- valid from `date` until the next date loaded for the pair. Reloading a date replaces its rate
-- (highest loaded_at wins): read with FINAL or argMax(rate, loaded_at).
-- Ordered by the pair then the date: exactly the ASOF lookup "latest rate on or before a day".
CREATE TABLE IF NOT EXISTS fx_rates
(
    base      LowCardinality(String),
    quote     LowCardinality(String),
    date      Date,
    rate      Decimal(38, 18),
    loaded_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (base, quote, date)
