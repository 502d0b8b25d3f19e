-- The refund rule of migration 0002 (refunds never exceed their charge), checked once per
-- statement instead of once per row: the sink now writes a batch's ledger rows in one INSERT, and
-- the row trigger's lock and two aggregate queries per row were most of the server's time for it.
-- Same rule, same lock keys, same error (SQLSTATE 23514, constraint refunds_within_charge, the
-- same message): every payment a statement wrote a payment / refund / refunded_total row of is
-- checked once, against the ledger as the statement left it (a row trigger fired after the
-- statement saw that state as well). Payments are locked in key order, so two writers of
-- overlapping payments never wait on each other in a cycle; the first payment (in key order)
-- that breaks the rule is the one named.
-- enable_seqscan off: the ledger is always probed by payment key (revenue_ledger_payment_idx). The
-- planner cannot know how many rows a transition table holds, and with stale statistics (a young or
-- fast-growing ledger) it chose a hash join over a full scan of the ledger for every statement.
CREATE FUNCTION revenue_ledger_refunds_within_charge_stmt() RETURNS trigger
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    bad record;
BEGIN
    -- Writers of one payment take turns, so two concurrent refunds cannot both fit "alone".
    PERFORM pg_advisory_xact_lock(hashtext('revstream.refunds_within_charge'), hashtext(k.payment_key))
    FROM (SELECT DISTINCT w.payment_key FROM written AS w
          WHERE w.kind IN ('payment', 'refund', 'refunded_total') ORDER BY w.payment_key) AS k;
    SELECT s.payment_key, s.paid, s.refunded INTO bad
    FROM (
        SELECT l.payment_key,
               sum(l.amount_minor) FILTER (WHERE l.kind = 'payment' AND l.counted) AS paid,
               greatest(coalesce(sum(l.amount_minor) FILTER (WHERE l.kind = 'refund' AND l.counted), 0),
                        coalesce(sum(l.amount_minor) FILTER (WHERE l.kind = 'refunded_total' AND l.counted), 0))
                   AS refunded
        FROM revenue_ledger AS l
        WHERE l.payment_key IN (SELECT w.payment_key FROM written AS w
                                WHERE w.kind IN ('payment', 'refund', 'refunded_total'))
        GROUP BY l.payment_key
    ) AS s
    WHERE s.paid IS NOT NULL AND s.refunded > s.paid
    ORDER BY s.payment_key
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'refunds of payment % (% minor units) would exceed the charge (%)',
            bad.payment_key, bad.refunded, bad.paid
            USING ERRCODE = 'check_violation', CONSTRAINT = 'refunds_within_charge';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER refunds_within_charge ON revenue_ledger;
DROP FUNCTION revenue_ledger_refunds_within_charge();
-- A trigger with a transition table serves one event, hence two (an INSERT ... ON CONFLICT DO
-- UPDATE fires both: inserted rows in the first table, updated rows in the second).
CREATE TRIGGER refunds_within_charge_insert
    AFTER INSERT ON revenue_ledger REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION revenue_ledger_refunds_within_charge_stmt();
CREATE TRIGGER refunds_within_charge_update
    AFTER UPDATE ON revenue_ledger REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION revenue_ledger_refunds_within_charge_stmt();
