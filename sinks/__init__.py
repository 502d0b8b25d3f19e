"""Consumers that write derived records to the stores, idempotently and in batches.

Each store module has the same shape: a store class with `add(record)` and `flush()` (one batch
per flush, buffer cleared in `finally`); the consumer wiring commits Kafka offsets only after
`flush()` returned, so a crash re-delivers the batch and the idempotent upserts absorb it.
"""
