"""`revstream bench`: measure ingest, end-to-end freshness, drain speed, memory and correctness.

- events.py    the signed Stripe webhooks it sends (pure: ids, bodies, signatures)
- loadgen.py   a multi-process HTTP/1.1 keep-alive load generator over raw sockets
- baseline.py  the bare server (uvicorn + the same ASGI front, 200 with no work) that bounds what ingest can do
- stack.py     the embedded default in a temporary directory, when no --url is given
- observe.py   what the pipeline has made visible (totals API, PostgreSQL, consumer offsets) and RSS
- backlog.py   raw envelopes produced straight into Kafka, for --backlog
- run.py       the phases and the report
- ingest_only.py  --ingest-only: Kafka + ingest alone, ingest's own ceiling
- stats.py     percentiles
"""
