"""PostgreSQL state store: webhook events, revenue ledger, orders; migrations."""
