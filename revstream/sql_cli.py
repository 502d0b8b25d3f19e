"""`revstream sql "SELECT ..."`: one read-only query, printed as an aligned table or as CSV.

Where it runs:
- CLICKHOUSE_URL is a server (http://...): directly against it.
- chdb (the embedded default): chdb belongs to the running `web` process, so the query goes to its
  POST /api/v1/sql (with REVSTREAM_API_TOKEN when set); when nothing listens there, the pipeline is
  stopped and the chdb directory is opened here.
Either way ClickHouse runs it with readonly = 1 (sinks/clickhouse/readonly.py).
"""

import csv
import sys
from typing import Any, TextIO

import httpx

from revstream.fx import process_url
from revstream.settings import Settings
from sinks.clickhouse.readonly import (
    QueryFailed,
    ReadOnlyViolation,
    SqlResult,
    checked_statement,
    run_readonly,
)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def write_table(result: SqlResult, out: TextIO) -> None:
    """Columns padded to their widest cell; numbers right-aligned; a row count at the end."""
    cells = [[_cell(v) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(result.columns)]
    numeric = [
        t.replace("Nullable(", "").startswith(("Int", "UInt", "Float", "Decimal")) for t in result.types
    ]
    out.write("  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)]
        out.write("  ".join(parts).rstrip() + "\n")
    more = " (truncated)" if result.truncated else ""
    out.write(f"({len(cells)} row{'s' if len(cells) != 1 else ''}{more})\n")


def write_csv(result: SqlResult, out: TextIO) -> None:
    writer = csv.writer(out)
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])


def _through_process(settings: Settings, query: str, url: str | None) -> SqlResult | None:
    """The running process's answer, or None when nothing listens (pipeline stopped)."""
    target = (url or process_url(settings)) + "/api/v1/sql"
    token = settings.api_token or settings.admin_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        response = httpx.post(target, json={"query": query}, headers=headers, timeout=120)
    except httpx.ConnectError:
        return None
    if response.status_code != 200:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise QueryFailed(f"{target} answered {response.status_code}: {message}")
    body = response.json()
    return SqlResult(body["columns"], body["types"], body["rows"], body["truncated"])


def _directly(settings: Settings, query: str) -> SqlResult:
    from sinks.clickhouse.client import ClickHouse

    try:
        clickhouse = ClickHouse(settings.resolved_clickhouse_url)
    except Exception as exc:
        raise QueryFailed(
            f"cannot open ClickHouse at {settings.resolved_clickhouse_url.split('@')[-1]} "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); if another process owns "
            "this chdb directory, run the command where it can reach that process (HOST/PORT or --url)"
        ) from None
    try:
        return run_readonly(clickhouse, query)
    finally:
        clickhouse.close()


def run_sql(
    settings: Settings, query: str, as_csv: bool, url: str | None = None, out: TextIO = sys.stdout
) -> int:
    """The `sql` command: 0 and the result on stdout, or 1 and the reason on stderr."""
    try:
        checked_statement(query)  # refuse early, before touching anything
        result = None
        if settings.resolved_clickhouse_url.startswith("chdb://"):
            result = _through_process(settings, query, url)
        if result is None:
            result = _directly(settings, query)
    except (ReadOnlyViolation, QueryFailed) as exc:
        print(f"revstream: {exc}", file=sys.stderr)
        return 1
    (write_csv if as_csv else write_table)(result, out)
    return 0
