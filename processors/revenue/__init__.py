"""Revenue derivation: raw provider events -> payments, refunds and orders."""
