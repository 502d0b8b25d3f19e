-- Dated FX rates that operators maintain (`revstream fx load FILE`; the same rows go to ClickHouse
-- fx_rates, where the reporting-currency totals read them).
-- 1 `base` = `rate` `quote`, valid from `rate_date` until the next date loaded for the pair.
-- Reloading a date replaces its rate (an operator's correction), so a load is idempotent.
CREATE TABLE fx_rates (
    base      text           NOT NULL CHECK (base ~ '^[a-z]{3}$'),
    quote     text           NOT NULL CHECK (quote ~ '^[a-z]{3}$' AND quote <> base),
    rate_date date           NOT NULL,
    rate      numeric(38, 18) NOT NULL CHECK (rate > 0),
    loaded_at timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (base, quote, rate_date)
);
