"""`revstream audit verify` and `revstream trace`: read-only commands on the PostgreSQL state."""

import json
import sys

import psycopg

from revstream.settings import Settings
from revstream.wiring import require_database
from sinks.postgres.audit_verify import summary, verify
from sinks.postgres.trace import render, trace


def audit_verify(settings: Settings) -> int:
    """Exit 0 when the whole chain verifies, 1 (naming the first broken receipt) otherwise."""

    def progress(done: int, total: int) -> None:
        print(f"audit verify: {done}/{total} receipts checked", file=sys.stderr, flush=True)

    with psycopg.connect(require_database(settings)) as conn:
        report = verify(conn, progress)
    print(summary(report))
    return 0 if report.ok else 1


def trace_command(settings: Settings, ident: str, as_json: bool) -> int:
    """Exit 0 when something mentions `ident`, 1 when nothing does."""
    with psycopg.connect(require_database(settings)) as conn:
        result = trace(conn, ident.strip())
    print(json.dumps(result.to_json(), indent=2) if as_json else render(result))
    return 0 if result.found else 1
