"""Sink metrics, labelled by sink name (postgres, clickhouse)."""

from prometheus_client import Counter, Histogram

BATCH_SIZE = Histogram(
    "revstream_sink_batch_size",
    "Messages per sink flush.",
    ["sink"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
FLUSH_SECONDS = Histogram("revstream_sink_flush_seconds", "Time to write one batch to the store.", ["sink"])
STORE_ERRORS = Counter(
    "revstream_sink_store_errors_total", "Failed batch writes (batch re-delivered).", ["sink"]
)
WRITTEN = Counter(
    "revstream_sink_messages_written_total",
    "Derived events written durably to the store (offsets committed after), by sink.",
    ["sink"],
)
CLICKHOUSE_ERRORS = Counter(
    "revstream_clickhouse_errors_total",
    "Failed ClickHouse calls (inserts and queries, server or chdb), by exception class.",
    ["error"],
)
POSTGRES_ERRORS = Counter(
    "revstream_postgres_errors_total",
    "Failed PostgreSQL batch writes, by exception class.",
    ["error"],
)
