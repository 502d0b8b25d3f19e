-- Daily and weekly revenue summaries, one per period: the unique key is what makes a scheduler
-- that catches up after downtime (or runs twice) produce each summary once.
CREATE TABLE revenue_summaries (
    summary_id   text        PRIMARY KEY,  -- daily:2024-06-01 | weekly:2024-W22
    kind         text        NOT NULL CHECK (kind IN ('daily', 'weekly')),
    label        text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    timezone     text        NOT NULL,
    body         jsonb       NOT NULL,
    produced_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, period_start)
);
