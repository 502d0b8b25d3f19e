"""Processor metrics (prometheus-client conventions: units in names, _total counters, few labels)."""

from collections import OrderedDict

from prometheus_client import Counter, Histogram

from schemas.revenue import DerivedEvent

PROCESSED = Counter("revstream_processed_events_total", "Raw events derived, by final state.", ["state"])
DEDUPLICATED = Counter("revstream_deduplicated_events_total", "Raw events skipped as already processed.")
DEAD_LETTERED = Counter("revstream_dead_lettered_total", "Messages sent to the DLQ, by stage.", ["stage"])
PUBLISH_ERRORS = Counter(
    "revstream_processor_publish_errors_total",
    "Processor batches whose derived messages the broker did not acknowledge (batch re-delivered).",
)
BATCH_SECONDS = Histogram(
    "revstream_processor_batch_seconds",
    "Time to derive one batch of raw events and have every output acknowledged by the broker.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REVENUE_MINOR = Counter(
    "revstream_revenue_amount_minor_total",
    "Money derived, in the currency's minor units, by kind (payment/refund), currency and livemode. "
    "A rate signal for dashboards, counted once per record id per process: the ledger is the truth.",
    ["kind", "currency", "livemode"],
)
REVENUE_RECORDS = Counter(
    "revstream_revenue_records_total",
    "Revenue records derived (first counted version per record id per process), by kind, currency "
    "and livemode.",
    ["kind", "currency", "livemode"],
)


class RevenueCounter:
    """Adds each counted record's amount to REVENUE_MINOR once, remembering a bounded number of
    record ids (a payment arrives as checkout.session.completed, payment_intent.succeeded and
    charge.succeeded: one record id, one increment). After a restart or on another replica a
    record may be counted again: these counters are for rates and dashboards, not accounting."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def observe(self, derived: DerivedEvent) -> None:
        for record in derived.revenue:
            if not record.counted or record.record_id in self._seen:
                continue
            self._seen[record.record_id] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            labels = (record.kind.value, record.currency, "true" if record.livemode else "false")
            REVENUE_MINOR.labels(*labels).inc(record.amount_minor)
            REVENUE_RECORDS.labels(*labels).inc()


ANOMALIES_UNREADABLE = Counter(
    "revstream_anomalies_unreadable_total", "Derived messages the anomaly processor could not read."
)
