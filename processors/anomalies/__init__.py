"""Anomaly detection over revenue events, in event time.

- observe.py: DerivedEvent -> observations, and their effect on hourly buckets (pure)
- config.py: detector tuning and threshold rules from configuration (pure)
- detectors.py: bucketed history -> alerts (pure)
- store.py: the state in PostgreSQL (buckets, seen record ids, watermark, alerts, outbox)
- consumer.py: the Kafka wiring (revenue.events.v1 -> state + alerts -> revenue.alerts.v1)
"""
