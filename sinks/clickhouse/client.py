"""One clickhouse-connect client behind a lock, with the DDL applied.

clickhouse-connect's sync client is used from async code through a single worker thread at a
time: chdb is not safe for concurrent use, and the async client does not support chdb.
"""

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from sinks.metrics import CLICKHOUSE_ERRORS

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
T = TypeVar("T")


def apply_ddl(client: Client, directory: Path = DDL_DIR) -> None:
    """Apply every DDL file in name order; each statement is idempotent (IF NOT EXISTS)."""
    for path in sorted(directory.glob("*.sql")):
        for statement in path.read_text().split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--"))
            if body.strip():
                client.command(body)


class ClickHouse:
    """The process's ClickHouse connection (server or chdb), serialized by a lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = clickhouse_connect.get_client(dsn=url)
        self._lock = threading.Lock()
        with self._lock:
            apply_ddl(self._client)

    def run(self, fn: Callable[[Client], T]) -> T:
        with self._lock:
            try:
                return fn(self._client)
            except Exception as exc:
                CLICKHOUSE_ERRORS.labels(error=type(exc).__name__).inc()
                raise

    async def run_async(self, fn: Callable[[Client], T]) -> T:
        return await asyncio.to_thread(self.run, fn)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.run(
            lambda c: [tuple(row) for row in c.query(sql, parameters=parameters or {}).result_rows]
        )
