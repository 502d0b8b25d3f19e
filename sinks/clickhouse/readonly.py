"""Analysts' ad-hoc SQL, read-only twice over: only SELECT / WITH / SHOW / DESCRIBE statements are
accepted, and ClickHouse itself runs each one with `readonly = 1` (no writes, no DDL, no setting
changes, no file / url table functions).

The setting goes into the statement's own SETTINGS clause, not a session SET: chdb keeps session
settings, and a session switched to readonly could never be switched back (the pipeline's sink
shares that session in the embedded default).
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.client import ClickHouse

ALLOWED_STATEMENTS = ("select", "with", "show", "describe", "desc")
# Words that could change how the statement runs or where its output goes; the user's own SETTINGS
# could also sit next to ours and override them.
FORBIDDEN_WORDS = ("settings", "readonly", "format", "outfile")
MAX_ROWS = 100_000
MAX_SECONDS = 60


class ReadOnlyViolation(ValueError):
    """The statement is not a single read-only query; the message says why."""


class QueryFailed(Exception):
    """ClickHouse refused or failed the statement; the message is ClickHouse's first line."""


@dataclass(frozen=True)
class SqlResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool


def checked_statement(query: str) -> str:
    """The statement with readonly settings appended, or ReadOnlyViolation."""
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ReadOnlyViolation("the query is empty")
    if ";" in text:
        raise ReadOnlyViolation("one statement only (no ';' inside the query)")
    if "/*" in text:
        raise ReadOnlyViolation("block comments (/* */) are not accepted; use -- comments")
    first = re.match(r"[A-Za-z]+", text)
    if first is None or first.group(0).lower() not in ALLOWED_STATEMENTS:
        raise ReadOnlyViolation("only SELECT, WITH, SHOW and DESCRIBE statements are accepted")
    words = set(re.findall(r"[a-z_]+", text.lower()))
    bad = [w for w in FORBIDDEN_WORDS if w in words]
    if bad:
        raise ReadOnlyViolation(
            f"{bad[0].upper()} is not accepted here: output format and settings are fixed"
        )
    # A newline first, so a trailing -- comment cannot swallow the clause.
    return (
        f"{text}\nSETTINGS max_result_rows = {MAX_ROWS}, result_overflow_mode = 'break', "
        f"max_execution_time = {MAX_SECONDS}, readonly = 1"
    )


def jsonable(value: Any) -> Any:
    """A ClickHouse value as plain JSON: times ISO 8601, decimals and big ints as exact strings."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def run_readonly(clickhouse: ClickHouse, query: str) -> SqlResult:
    """Run one read-only statement; ReadOnlyViolation before, QueryFailed from ClickHouse."""
    statement = checked_statement(query)

    def run(client: Client) -> SqlResult:
        try:
            result = client.query(statement)
        except Exception as exc:  # clickhouse-connect wraps every engine error differently per backend
            raise QueryFailed(_first_line(str(exc))) from None
        rows = [[jsonable(v) for v in row] for row in result.result_rows]
        return SqlResult(
            columns=list(result.column_names),
            types=[t.name for t in result.column_types],
            rows=rows,
            truncated=len(rows) >= MAX_ROWS,
        )

    return clickhouse.run(run)


def _first_line(message: str) -> str:
    for line in message.splitlines():
        if "DB::Exception" in line or "Code:" in line:
            return line.strip()[:500]
    return (message.strip().splitlines() or ["query failed"])[0][:500]
