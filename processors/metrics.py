"""Processor metrics."""

from prometheus_client import Counter

PROCESSED = Counter("revstream_processed_events_total", "Raw events derived, by final state.", ["state"])
DEDUPLICATED = Counter("revstream_deduplicated_events_total", "Raw events skipped as already processed.")
DEAD_LETTERED = Counter("revstream_dead_lettered_total", "Messages sent to the DLQ, by stage.", ["stage"])
