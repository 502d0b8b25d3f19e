-- Alerts and their lifecycle. alert_id is deterministic (hash of rule, window and key), and
-- alerts are inserted with ON CONFLICT DO NOTHING: finding an anomaly again never repeats it.

CREATE TABLE alerts (
    alert_id          text        PRIMARY KEY,
    rule              text        NOT NULL,
    severity          text        NOT NULL CHECK (severity IN ('warning', 'critical')),
    entity            text        NOT NULL,
    currency          text        NOT NULL,
    livemode          boolean     NOT NULL,
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    title             text        NOT NULL,
    observed          bigint      NOT NULL,
    expected          bigint,
    unit              text        NOT NULL,
    details           jsonb       NOT NULL DEFAULT '{}',
    status            text        NOT NULL DEFAULT 'open'
                                  CHECK (status IN ('open', 'acknowledged', 'resolved', 'dismissed')),
    detected_at       timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    -- Transactional outbox towards revenue.alerts.v1 (ClickHouse history): NULL until the
    -- broker acknowledged it; the anomaly processor relays NULL rows after every batch.
    published_at      timestamptz
);
CREATE INDEX alerts_list_idx ON alerts (detected_at DESC, alert_id DESC);
CREATE INDEX alerts_unpublished_idx ON alerts (detected_at) WHERE published_at IS NULL;

-- Audit of every lifecycle change made through the API: who, when, from, to.
CREATE TABLE alert_events (
    id          bigserial   PRIMARY KEY,
    alert_id    text        NOT NULL REFERENCES alerts (alert_id),
    actor       text        NOT NULL,
    from_status text        NOT NULL,
    to_status   text        NOT NULL,
    note        text,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);
