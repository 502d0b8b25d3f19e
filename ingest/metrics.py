"""Ingest metrics (prometheus-client conventions: units in names, _total counters, few labels)."""

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "revstream_webhooks_received_total",
    "Webhook requests answered, by source and HTTP status.",
    ["source", "status"],
)
REJECTIONS = Counter(
    "revstream_webhook_rejections_total",
    "Webhook requests refused before reaching Kafka, by source and reason.",
    ["source", "reason"],
)
PUBLISH_SECONDS = Histogram(
    "revstream_publish_latency_seconds",
    "Time from publish to broker acknowledgement of a raw envelope.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BROKER_ERRORS = Counter(
    "revstream_broker_errors_total",
    "Raw envelopes not acknowledged by the broker in time (answered 503).",
)
SHED = Counter(
    "revstream_webhooks_shed_total",
    "Requests answered 503 at once because ingest already had REVSTREAM_MAX_INFLIGHT in progress.",
    ["source"],
)
IN_FLIGHT = Gauge("revstream_ingest_requests_in_flight", "Webhook requests being verified or published now.")
