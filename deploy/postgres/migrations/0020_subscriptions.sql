-- Subscriptions and MRR (sinks/postgres/subscriptions.py writes these, schemas/subscriptions.py
-- defines the rule).
--
-- subscription_snapshots is the source of truth: every version of every subscription, immutable,
-- keyed by subscription + event, so a re-delivered event inserts nothing. `subscriptions` (current
-- state) and `mrr_movements` are recomputed from a subscription's full snapshot history in the
-- same transaction that adds a snapshot, so they never depend on the order events arrived in.

CREATE TABLE subscription_snapshots (
    snapshot_id          text        PRIMARY KEY,
    subscription_key     text        NOT NULL,
    subscription_id      text        NOT NULL,
    source               text        NOT NULL,
    entity               text        NOT NULL,
    livemode             boolean     NOT NULL,
    customer_id          text,
    status               text        NOT NULL,
    currency             text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    mrr_minor            bigint      NOT NULL CHECK (mrr_minor >= 0),
    items                jsonb       NOT NULL,
    discounts            jsonb       NOT NULL,
    cancel_at_period_end boolean     NOT NULL,
    current_period_start timestamptz,
    current_period_end   timestamptz,
    canceled_at          timestamptz,
    ended_at             timestamptz,
    trial_end            timestamptz,
    occurred_at          timestamptz NOT NULL,
    version              bigint      NOT NULL,
    source_event_id      text        NOT NULL,
    source_event_type    text        NOT NULL,
    inserted_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subscription_key, version, source_event_id)
);

CREATE TABLE subscriptions (
    subscription_key      text        PRIMARY KEY,
    subscription_id       text        NOT NULL,
    source                text        NOT NULL,
    entity                text        NOT NULL,
    livemode              boolean     NOT NULL,
    customer_id           text,
    status                text        NOT NULL,
    currency              text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    mrr_minor             bigint      NOT NULL CHECK (mrr_minor >= 0),
    arr_minor             bigint      NOT NULL CHECK (arr_minor = 12 * mrr_minor),
    cancel_at_period_end  boolean     NOT NULL,
    current_period_start  timestamptz,
    current_period_end    timestamptz,
    canceled_at           timestamptz,
    ended_at              timestamptz,
    first_seen_at         timestamptz NOT NULL,
    first_active_at       timestamptz,
    churned_at            timestamptz,
    snapshot_count        integer     NOT NULL,
    version               bigint      NOT NULL,
    source_event_id       text        NOT NULL,
    -- From subscription_invoices (newest version), refreshed in the same transaction.
    latest_invoice_id     text,
    latest_invoice_status text,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id);

CREATE TABLE mrr_movements (
    movement_id      text        PRIMARY KEY,
    subscription_key text        NOT NULL,
    customer_id      text,
    source           text        NOT NULL,
    entity           text        NOT NULL,
    livemode         boolean     NOT NULL,
    currency         text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    kind             text        NOT NULL
                                 CHECK (kind IN ('new', 'expansion', 'contraction', 'churn', 'reactivation')),
    amount_minor     bigint      NOT NULL CHECK (amount_minor <> 0 AND amount_minor = mrr_after - mrr_before),
    mrr_before       bigint      NOT NULL CHECK (mrr_before >= 0),
    mrr_after        bigint      NOT NULL CHECK (mrr_after >= 0),
    occurred_at      timestamptz NOT NULL,
    version          bigint      NOT NULL,
    source_event_id  text        NOT NULL
);
CREATE INDEX mrr_movements_subscription_idx ON mrr_movements (subscription_key);
CREATE INDEX mrr_movements_time_idx ON mrr_movements (occurred_at);

CREATE TABLE subscription_invoices (
    invoice_key       text        PRIMARY KEY,
    invoice_id        text        NOT NULL,
    subscription_key  text        NOT NULL,
    source            text        NOT NULL,
    entity            text        NOT NULL,
    livemode          boolean     NOT NULL,
    customer_id       text,
    status            text        NOT NULL,
    payment_failed    boolean     NOT NULL,
    billing_reason    text,
    amount_due        bigint      NOT NULL CHECK (amount_due >= 0),
    amount_paid       bigint      NOT NULL CHECK (amount_paid >= 0),
    currency          text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    period_start      timestamptz,
    period_end        timestamptz,
    occurred_at       timestamptz NOT NULL,
    version           bigint      NOT NULL,
    source_event_id   text        NOT NULL,
    source_event_type text        NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_invoices_subscription_idx ON subscription_invoices (subscription_key);

CREATE TABLE invoice_payments (
    invoice_payment_key text        PRIMARY KEY,
    invoice_payment_id  text        NOT NULL,
    invoice_id          text        NOT NULL,
    source              text        NOT NULL,
    entity              text        NOT NULL,
    livemode            boolean     NOT NULL,
    status              text        NOT NULL,
    amount_paid         bigint      NOT NULL CHECK (amount_paid >= 0),
    currency            text        NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    payment_intent      text,
    charge              text,
    occurred_at         timestamptz NOT NULL,
    version             bigint      NOT NULL,
    source_event_id     text        NOT NULL,
    source_event_type   text        NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_payments_invoice_idx ON invoice_payments (invoice_id);

-- Current MRR, ARR and active customers (customers with MRR > 0; a subscription without a customer
-- counts as its own) per entity, livemode and currency.
CREATE VIEW mrr_totals AS
SELECT entity,
       livemode,
       currency,
       sum(mrr_minor)::bigint AS mrr_minor,
       (12 * sum(mrr_minor))::bigint AS arr_minor,
       count(DISTINCT coalesce(customer_id, subscription_key)) AS active_customers,
       count(*) AS active_subscriptions
FROM subscriptions
WHERE mrr_minor > 0
GROUP BY entity, livemode, currency;
