"""Daily and weekly revenue summaries from the PostgreSQL ledger.

- schedule.py: which periods are due at a given moment (pure, injected clock)
- build.py: query rows -> the summary body (pure)
- store.py: the queries, and the one-per-period insert with its Slack outbox row
"""
