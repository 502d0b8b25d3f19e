-- Messages for Slack, written in the same transaction as the alert or summary they announce
-- (message_id is unique: one message per alert or summary, ever).
--
-- States: pending -> sending -> sent; pending again after a retryable failure (429, 5xx,
-- connection refused) with next_attempt_at; failed after a permanent one or too many attempts;
-- expired when older than the configured age; uncertain when the sender stopped between
-- sending and recording the answer: it is never re-sent (at most once in that window).
CREATE TABLE slack_outbox (
    message_id      text        PRIMARY KEY,  -- alert:<alert_id> | summary:<summary_id>
    kind            text        NOT NULL CHECK (kind IN ('alert', 'summary')),
    ref             text        NOT NULL,     -- alerts.alert_id or revenue_summaries.summary_id
    subject_time    timestamptz NOT NULL,     -- when the thing it reports on ended (event time)
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'uncertain', 'expired')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX slack_outbox_due_idx ON slack_outbox (next_attempt_at, created_at) WHERE state = 'pending';
