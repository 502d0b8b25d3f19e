-- Subscription snapshots: every version of every subscription, as the processors derived it
-- (schemas/subscriptions.py SubscriptionSnapshot), with its MRR in the currency's minor units.
--
-- Exact under replay: a snapshot is immutable and identified by (subscription_key, version,
-- source_event_id), the ORDER BY key, so ReplacingMergeTree collapses re-deliveries. Read with FINAL.
-- No partition key, for the same reason as revenue_facts (versions of one key must meet in a merge).
CREATE TABLE IF NOT EXISTS subscription_snapshots
(
    snapshot_id          String,
    subscription_key     String,
    subscription_id      String,
    source               LowCardinality(String),
    entity               LowCardinality(String),
    livemode             Bool,
    customer_id          String,
    status               LowCardinality(String),
    currency             LowCardinality(String),
    mrr_minor            Int64,
    cancel_at_period_end Bool,
    occurred_at          DateTime64(3, 'UTC'),
    version              UInt64,
    source_event_id      String,
    source_event_type    LowCardinality(String),
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (subscription_key, version, source_event_id);

-- MRR movements (new, expansion, contraction, churn, reactivation), computed at read time from the
-- snapshots with the same rule as schemas/subscriptions.py replay_subscription: per subscription,
-- in (version, source_event_id) order, compare each snapshot's MRR with the previous one (0 before
-- the first). Computed from the set of snapshots, so delivery order and duplicates cannot change it.
-- amount_minor is signed (churn and contraction are negative). MRR over time per currency is the
-- running sum of amount_minor ordered by occurred_at.
CREATE OR REPLACE VIEW mrr_movements AS
SELECT
    subscription_key,
    customer_id,
    source,
    entity,
    livemode,
    occurred_at,
    version,
    source_event_id,
    move.1 AS kind,
    move.2 AS currency,
    move.4 - move.3 AS amount_minor,
    move.3 AS mrr_before,
    move.4 AS mrr_after
FROM
(
    SELECT
        *,
        (prev_currency != currency AND prev_mrr > 0) AS switched,
        if(switched, toInt64(0), prev_mrr) AS base,
        arrayConcat(
            if(switched, [tuple('churn', toString(prev_currency), prev_mrr, toInt64(0))], []),
            if(
                mrr_minor != base,
                [tuple(
                    multiIf(base = 0, if(had_mrr, 'reactivation', 'new'), mrr_minor = 0, 'churn',
                            mrr_minor > base, 'expansion', 'contraction'),
                    toString(currency), base, mrr_minor)],
                []
            )
        ) AS moves
    FROM
    (
        SELECT
            subscription_key, customer_id, source, entity, livemode, currency, mrr_minor,
            occurred_at, version, source_event_id,
            lagInFrame(mrr_minor, 1, toInt64(0)) OVER history AS prev_mrr,
            lagInFrame(toString(currency), 1, '') OVER history AS prev_currency,
            max(mrr_minor > 0) OVER (
                PARTITION BY subscription_key ORDER BY version, source_event_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS had_mrr
        FROM subscription_snapshots FINAL
        WINDOW history AS (
            PARTITION BY subscription_key ORDER BY version, source_event_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        )
    )
)
ARRAY JOIN moves AS move
