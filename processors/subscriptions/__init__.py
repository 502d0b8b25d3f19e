"""Subscription state and MRR: pure derivations from Stripe billing events (no I/O)."""
