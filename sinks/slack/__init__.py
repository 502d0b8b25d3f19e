"""Slack sink: alerts and summaries from the PostgreSQL outbox to SLACK_WEBHOOK_URL.

- blocks.py: alert / summary -> Block Kit message (pure)
- poster.py: one POST and what its answer means (sent, retry later, failed, uncertain)
- outbox.py: the slack_outbox state machine in PostgreSQL
- service.py: the sending loop (`revstream run slack`)
"""
