"""Writes FX rates to PostgreSQL fx_rates: one transaction, upsert by (base, quote, rate_date)."""

from collections.abc import Sequence

import psycopg

from schemas.fx import FxRate

UPSERT_RATE = (
    "INSERT INTO fx_rates (base, quote, rate_date, rate) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (base, quote, rate_date) DO UPDATE SET rate = EXCLUDED.rate, loaded_at = now()"
)


def upsert_rates(database_url: str, rates: Sequence[FxRate]) -> int:
    """All rates or none (one transaction); reloading the same file changes nothing but loaded_at."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(UPSERT_RATE, [(r.base, r.quote, r.date, r.rate) for r in rates])
    return len(rates)
