"""Ingest metrics (prometheus-client conventions: units in names, _total counters, few labels)."""

from typing import Any

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
IN_FLIGHT = Gauge("revstream_ingest_inflight_requests", "Webhook requests being verified or published now.")

# Verified events by type. The label keeps only the revenue types the pipeline knows (and the
# Gumroad resources) and folds everything else into "other", so a provider inventing event types
# cannot grow the series count without bound.
KNOWN_EVENT_TYPES = frozenset(
    {
        # Stripe
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "invoice_payment.paid",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        # Gumroad resources
        "sale",
        "refund",
        "dispute",
        "dispute_won",
        "cancellation",
        "subscription_updated",
        "subscription_ended",
        "subscription_restarted",
    }
)

EVENTS_BY_TYPE = Counter(
    "revstream_webhook_events_total",
    "Verified webhook events answered, by source, event type (known revenue types, else 'other') "
    "and HTTP status (200 = in Kafka, 503 = broker did not acknowledge).",
    ["source", "type", "status"],
)


def event_type_label(event_type: str) -> str:
    """The `type` label for an event type: itself when known, else "other" (bounded cardinality)."""
    return event_type if event_type in KNOWN_EVENT_TYPES else "other"


_EVENT_COUNTERS: dict[tuple[str, str, int], Any] = {}
_ANSWER_COUNTERS: dict[tuple[str, int], Any] = {}


def count_event(source: str, event_type: str, status: int) -> None:
    """Count one verified event answered with `status` (one call per answer, on the hot path: the
    labelled child is looked up once per label set, not per request)."""
    key = (source, event_type, status)
    counter = _EVENT_COUNTERS.get(key)
    if counter is None:
        counter = EVENTS_BY_TYPE.labels(source=source, type=event_type_label(event_type), status=str(status))
        if len(_EVENT_COUNTERS) < 10_000:  # unknown types fold into "other": keep the cache bounded too
            _EVENT_COUNTERS[key] = counter
    counter.inc()


def count_answer(source: str, status: int) -> None:
    """Count one webhook request answered with `status` (revstream_webhooks_received_total)."""
    counter = _ANSWER_COUNTERS.get((source, status))
    if counter is None:
        counter = _ANSWER_COUNTERS[(source, status)] = WEBHOOKS.labels(source=source, status=str(status))
    counter.inc()
