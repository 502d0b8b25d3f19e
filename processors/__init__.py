"""Kafka consumers that dedupe and derive. Derivations are pure functions (envelope -> records)
kept apart from the consumer wiring, so they are tested with plain data and no broker."""
