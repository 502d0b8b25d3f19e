"""`revstream backfill csv FILE`: import offline revenue from a CSV file, idempotently.

Columns (header row required): id, kind, amount, currency, occurred_at, and optionally entity,
customer, reference, product, description, refund_of, livemode. `id` is the row's idempotency key.

Every row is validated first and bad rows are reported by line number and reason; then the good
rows are posted to the running pipeline's POST /api/v1/manual-entries (same validation,
idempotency and Kafka acknowledgement as any entry). Running the same file twice changes
nothing: each row reports "already imported". A row whose id was imported before with other
content is a conflict, reported and not changed. Exit status 1 if any row was bad or conflicted.
"""

import csv
import json
import re
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from revstream.operator_client import OperatorError, call, client
from revstream.settings import Settings
from schemas.manual import IDEMPOTENCY_KEY_PATTERN, ManualEntry, describe_errors

REQUIRED = ("id", "kind", "amount", "currency", "occurred_at")
OPTIONAL = ("entity", "customer", "reference", "product", "description", "refund_of", "livemode")
WORKERS = 8
MAX_ATTEMPTS = 5


@dataclass
class Row:
    line: int
    key: str
    body: bytes


@dataclass
class Report:
    invalid: list[tuple[int, str]] = field(default_factory=list)
    imported: int = 0
    already: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)


def _entry_fields(record: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {k: v for k, v in record.items() if k in REQUIRED[1:] + OPTIONAL and v != ""}
    if "livemode" in fields:
        fields["livemode"] = {"true": True, "false": False}.get(
            fields["livemode"].lower(), fields["livemode"]
        )
    return fields


def read_rows(path: Path, report: Report) -> Iterator[Row]:
    """Yield each valid row; record each invalid one in `report` with its line number."""
    seen: dict[str, bytes] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise OperatorError(
                f"{path}: header lacks column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}"
            )
        unknown = [c for c in reader.fieldnames or [] if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise OperatorError(f"{path}: unknown column(s) {', '.join(unknown)}")
        for record in reader:
            line = reader.line_num
            if None in record:
                report.invalid.append((line, "more cells than header columns"))
                continue
            key = (record.get("id") or "").strip()
            if not re.match(IDEMPOTENCY_KEY_PATTERN, key):
                report.invalid.append((line, "id: required, 1-200 of A-Z a-z 0-9 . _ : -"))
                continue
            try:
                entry = ManualEntry.model_validate(_entry_fields(record))
            except ValidationError as exc:
                reason = describe_errors(exc)
                report.invalid.append((line, reason))
                continue
            body = json.dumps(entry.model_dump(mode="json", exclude_none=True)).encode()
            if key in seen:
                if seen[key] != body:
                    report.invalid.append((line, f"id {key} appears earlier in the file with other content"))
                continue
            seen[key] = body
            yield Row(line, key, body)


def _post(http: httpx.Client, row: Row) -> tuple[Row, str | None, bool]:
    """Post one row; retry 503s (Retry-After) a few times. Returns (row, error, replayed)."""
    for attempt in range(MAX_ATTEMPTS):
        response = call(
            http,
            "POST",
            "/api/v1/manual-entries",
            content=row.body,
            headers={"Content-Type": "application/json", "Idempotency-Key": row.key},
        )
        if response.status_code == 200:
            return row, None, response.headers.get("idempotent-replayed") == "true"
        if response.status_code == 503 and attempt + 1 < MAX_ATTEMPTS:
            time.sleep(min(float(response.headers.get("retry-after", "1")), 10))
            continue
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        return row, f"{response.status_code} {message}", False
    raise AssertionError("unreachable")


def backfill_csv(settings: Settings, path: Path, url: str | None) -> int:
    if not path.is_file():
        raise OperatorError(f"{path}: no such file")
    report = Report()
    rows = list(read_rows(path, report))
    total = len(rows)
    print(f"{path}: {total} valid rows, {len(report.invalid)} invalid; importing...", file=sys.stderr)
    done = 0
    with client(settings, url, admin=True) as http, ThreadPoolExecutor(WORKERS) as pool:
        for row, error, replayed in pool.map(lambda r: _post(http, r), rows):
            done += 1
            if error is not None:
                report.failed.append((row.line, error))
            elif replayed:
                report.already += 1
            else:
                report.imported += 1
            if done % 500 == 0 or done == total:
                print(f"  {done}/{total} rows sent", file=sys.stderr)
    for line, reason in sorted(report.invalid + report.failed):
        print(f"line {line}: {reason}")
    print(
        f"imported {report.imported}, already imported {report.already}, "
        f"invalid {len(report.invalid)}, refused {len(report.failed)}"
    )
    return 1 if report.invalid or report.failed else 0
