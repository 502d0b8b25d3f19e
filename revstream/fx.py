"""`revstream fx load FILE`: load an operator-maintained rate table into PostgreSQL and ClickHouse.

FILE is CSV with the header `date,base,quote,rate` (e.g. `2024-05-01,eur,usd,1.0712`). The whole
file is checked first and nothing is written if any line is wrong; loading is an upsert by
(base, quote, date) in both stores, so re-running the command after a failure is always safe.

ClickHouse: in the embedded default chdb belongs to the running `web` process, so the rates go
through its POST /api/v1/fx/rates (needs REVSTREAM_ADMIN_TOKEN); when nothing listens there, or
CLICKHOUSE_URL is a server, they are written directly.
"""

import csv
import io
import sys
from pathlib import Path

import httpx
from pydantic import ValidationError

from revstream.embedded import POSTGRES_PORT
from revstream.settings import Settings
from schemas.fx import FxRate, FxRateBatch

HEADER = ["date", "base", "quote", "rate"]


class FxFileError(ValueError):
    """The rate file is malformed; the message names the line."""


def parse_rates(text: str) -> list[FxRate]:
    """Every row of a date,base,quote,rate CSV, validated; the same (pair, date) twice must agree."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != HEADER:
        raise FxFileError(f"line 1: expected the header {','.join(HEADER)}")
    rates: dict[tuple[str, str, object], FxRate] = {}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 4:
            raise FxFileError(f"line {line_no}: expected 4 fields (date,base,quote,rate), got {len(row)}")
        try:
            rate = FxRate.model_validate(dict(zip(HEADER, (cell.strip() for cell in row), strict=True)))
        except ValidationError as exc:
            err = exc.errors(include_input=False, include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            raise FxFileError(f"line {line_no}: {field}: {err['msg']}") from None
        key = (rate.base, rate.quote, rate.date)
        if key in rates and rates[key].rate != rate.rate:
            raise FxFileError(
                f"line {line_no}: {rate.base}->{rate.quote} on {rate.date} has two different rates"
            )
        rates[key] = rate
    if not rates:
        raise FxFileError("the file has no rates")
    return sorted(rates.values(), key=lambda r: (r.base, r.quote, r.date))


def _database_url(settings: Settings) -> str:
    # Unset DATABASE_URL: the server `revstream up` runs (it must be running).
    return settings.database_url or f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/revstream"


def process_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def _load_clickhouse(settings: Settings, rates: list[FxRate], url: str | None) -> str:
    from sinks.clickhouse.client import ClickHouse
    from sinks.clickhouse.fx import insert_rates

    ch_url = settings.resolved_clickhouse_url
    if ch_url.startswith("chdb://"):
        target = (url or process_url(settings)) + "/api/v1/fx/rates"
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        try:
            response = httpx.post(
                target,
                content=FxRateBatch(rates=rates).model_dump_json(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
                timeout=60,
            )
        except httpx.ConnectError:
            pass  # nothing running: chdb is free to open here
        else:
            if response.status_code != 200:
                raise RuntimeError(
                    f"the running process at {target} answered {response.status_code}: {response.text}"
                )
            return f"ClickHouse (through the running process at {target})"
    clickhouse = ClickHouse(ch_url)
    try:
        insert_rates(clickhouse, rates)
    finally:
        clickhouse.close()
    return "ClickHouse (directly)"


def load_fx(settings: Settings, path: Path, url: str | None = None) -> int:
    """The `fx load` command: 0 when both stores have the rates, 1 otherwise (with the reason)."""
    from sinks.postgres.fx import upsert_rates

    try:
        rates = parse_rates(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"revstream: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    except FxFileError as exc:
        print(f"revstream: {path}: {exc}; nothing was loaded", file=sys.stderr)
        return 1
    try:
        upsert_rates(_database_url(settings), rates)
    except Exception as exc:  # psycopg's errors; the URL's password is never printed
        print(
            f"revstream: PostgreSQL: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        print(
            "revstream: nothing was loaded (is `revstream up` running, or DATABASE_URL set?)", file=sys.stderr
        )
        return 1
    try:
        where = _load_clickhouse(settings, rates, url)
    except Exception as exc:
        print(
            f"revstream: ClickHouse: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        print(
            "revstream: PostgreSQL has the rates, ClickHouse does not yet: fix that and run the same command again"
        )
        return 1
    pairs = sorted({f"{r.base}->{r.quote}" for r in rates})
    first, last = min(r.date for r in rates), max(r.date for r in rates)
    print(f"loaded {len(rates)} rates ({', '.join(pairs)}; {first}..{last}) into PostgreSQL and {where}")
    return 0
