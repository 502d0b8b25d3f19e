-- revstream state store, version 2: the full revenue ledger (refund totals, disputes, fees,
-- failed payments), orders that can be disputed and know their buyer's email, the database rule
-- that refunds never exceed their charge, and the order-event outbox.

ALTER TABLE revenue_ledger DROP CONSTRAINT revenue_ledger_kind_check;
ALTER TABLE revenue_ledger ADD CONSTRAINT revenue_ledger_kind_check
    CHECK (kind IN ('payment', 'refund', 'refunded_total', 'dispute', 'fee', 'failed_payment'));

ALTER TABLE orders ADD COLUMN customer_email text;
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('paid', 'partially_refunded', 'refunded', 'disputed'));

-- Refunds never exceed the charge, whatever code writes the ledger. A payment's refunds are
-- max(sum of its counted refund rows, sum of its counted refunded_total rows) (see
-- schemas/revenue.py RevenueKind); they may not exceed the counted payment. Refunds that arrive
-- before their payment are accepted (the charge amount is not known yet) and are checked when the
-- payment row arrives: whichever write would break the rule is refused (SQLSTATE 23514,
-- constraint refunds_within_charge) and the sink records that event as failed with the reason.
CREATE FUNCTION revenue_ledger_refunds_within_charge() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    paid     bigint;
    refunded bigint;
BEGIN
    IF NEW.kind NOT IN ('payment', 'refund', 'refunded_total') THEN
        RETURN NULL;
    END IF;
    -- Writers of one payment take turns, so two concurrent refunds cannot both fit "alone".
    PERFORM pg_advisory_xact_lock(hashtext('revstream.refunds_within_charge'), hashtext(NEW.payment_key));
    SELECT sum(amount_minor) INTO paid
    FROM revenue_ledger WHERE payment_key = NEW.payment_key AND kind = 'payment' AND counted;
    SELECT greatest(coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund'), 0),
                    coalesce(sum(amount_minor) FILTER (WHERE kind = 'refunded_total'), 0))
    INTO refunded
    FROM revenue_ledger
    WHERE payment_key = NEW.payment_key AND kind IN ('refund', 'refunded_total') AND counted;
    IF paid IS NOT NULL AND refunded > paid THEN
        RAISE EXCEPTION 'refunds of payment % (% minor units) would exceed the charge (%)',
            NEW.payment_key, refunded, paid
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_within_charge';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER refunds_within_charge
    AFTER INSERT OR UPDATE ON revenue_ledger
    FOR EACH ROW EXECUTE FUNCTION revenue_ledger_refunds_within_charge();

-- Order events outbox: written in the same transaction as the order state it announces, one row
-- per transition (the deterministic event_id is the primary key), then published to
-- revenue.orders.v1 by the Postgres sink and marked published (sinks/postgres/order_events.py).
CREATE TABLE order_events (
    event_id       text        PRIMARY KEY,
    event_type     text        NOT NULL CHECK (event_type IN ('order.paid', 'order.refunded')),
    order_id       text        NOT NULL REFERENCES orders (order_id),
    entity         text        NOT NULL,
    livemode       boolean     NOT NULL,
    payment_key    text        NOT NULL,
    customer_id    text,
    customer_email text,
    amount_minor   bigint      NOT NULL CHECK (amount_minor >= 0),
    refunded_minor bigint      NOT NULL CHECK (refunded_minor >= 0),
    currency       text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz
);
CREATE INDEX order_events_unpublished_idx ON order_events (recorded_at, event_id) WHERE published_at IS NULL;
