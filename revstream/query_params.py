"""Query parameters of the read API: one pydantic model per endpoint, validated once at the edge.

The same models produce the OpenAPI parameter lists (revstream/openapi.py), so the docs cannot
drift from what is enforced. Any problem is a `BadRequest` (HTTP 400) naming the parameter.
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.envelope import Source
from sinks.clickhouse.analytics import GROUP_COLUMNS, FactFilter

MAX_BUCKETS = 5000
DEFAULT_SPAN = {
    "hour": timedelta(hours=48),
    "day": timedelta(days=30),
    "week": timedelta(weeks=12),
    "month": timedelta(days=365),
}
BUCKET_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}


class BadRequest(Exception):
    """A client mistake: answered 400 with this message."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filters(_Params):
    livemode: bool = Field(default=True, description="true: live money (default); false: provider test mode.")
    source: Source | None = Field(default=None, description="Only this source.")
    entity: str | None = Field(default=None, min_length=1, max_length=200, description="Only this entity.")
    currency: str | None = Field(
        default=None, pattern=r"^[A-Za-z]{3}$", description="Only this ISO 4217 currency (e.g. usd)."
    )
    product: str | None = Field(default=None, min_length=1, max_length=200, description="Only this product.")

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class _Reporting(_Params):
    reporting_currency: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{3}$",
        description="Also report in this currency, converted with the dated FX rates "
        "(default REVSTREAM_REPORTING_CURRENCY). Facts without a rate are listed in missing_rates "
        "and left out of the converted sums.",
    )

    @field_validator("reporting_currency")
    @classmethod
    def _lower_reporting(cls, value: str | None) -> str | None:
        return value.lower() if value else value


class _Range(_Params):
    start: str | None = Field(
        default=None,
        alias="from",
        description="Range start, inclusive: RFC 3339 (2024-05-01T00:00:00Z), or a date / a time "
        "without offset, read in the business time zone.",
    )
    end: str | None = Field(default=None, alias="to", description="Range end, exclusive; same formats.")


class TotalsParams(Filters, _Reporting):
    """GET /api/v1/revenue/totals"""


class TrendsParams(Filters, _Reporting, _Range):
    """GET /api/v1/revenue/trends"""

    interval: Literal["hour", "day", "week", "month"] = Field(
        default="day",
        description="Bucket size; days, weeks (Monday) and months start in the business time zone.",
    )
    group_by: str | None = Field(
        default=None,
        description="Comma-separated: source, entity, currency, product. Series are always per "
        "currency too (money in different currencies is never added up); the reporting block "
        "sums across currencies.",
    )

    @field_validator("group_by")
    @classmethod
    def _groups(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if p not in GROUP_COLUMNS]
        if bad or not parts:
            raise ValueError(f"expected a comma-separated list of {', '.join(GROUP_COLUMNS)}")
        return ",".join(dict.fromkeys(parts))


class EventsParams(Filters, _Range):
    """GET /api/v1/revenue/events"""

    kind: str | None = Field(
        default=None, pattern=r"^[a-z_]{1,32}$", description="Only this kind (payment, refund, ...)."
    )
    cursor: str | None = Field(
        default=None, max_length=1000, description="next_cursor from the previous page; omit for the first."
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Page size, 1-1000.")


class ExportParams(Filters, _Range):
    """GET /api/v1/revenue/export"""

    kind: str | None = Field(
        default=None, pattern=r"^[a-z_]{1,32}$", description="Only this kind (payment, refund, ...)."
    )
    format: Literal["csv", "json"] = Field(
        default="csv", description="csv (with a header row) or json (an array)."
    )


def parse(model: type[_Params], query: Mapping[str, str]) -> Any:
    """Validate query parameters; a BadRequest names each bad or unknown parameter."""
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        known = sorted(f.alias or n for n, f in model.model_fields.items())
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "query"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown parameter {name!r} (known: {', '.join(known)})")
            else:
                problems.append(f"{name}: {err['msg']}")
        raise BadRequest("; ".join(problems)) from None


def parse_instant(name: str, value: str, tz: ZoneInfo) -> datetime:
    """RFC 3339 as given; a date or a time without offset is read in the business time zone."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=tz).astimezone(UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name}: {value!r} is not a date or time; use e.g. 2024-05-01 or 2024-05-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def time_range(
    params: _Range, tz: ZoneInfo, now: datetime, default_span: timedelta | None
) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC; with a default span, missing ends become [end - span, now)."""
    start = parse_instant("from", params.start, tz) if params.start else None
    end = parse_instant("to", params.end, tz) if params.end else None
    if default_span is not None:
        end = end or now
        start = start or end - default_span
    if start is not None and end is not None and start >= end:
        raise BadRequest("from must be earlier than to")
    return start, end


def fact_filter(
    params: Filters, start: datetime | None, end: datetime | None, kind: str | None = None
) -> FactFilter:
    return FactFilter(
        livemode=params.livemode,
        source=params.source.value if params.source else None,
        entity=params.entity,
        currency=params.currency,
        kind=kind,
        product=params.product,
        start=start,
        end=end,
    )


def bucket_starts(start: datetime, end: datetime, interval: str, tz: ZoneInfo) -> list[datetime]:
    """Start (UTC) of every bucket that overlaps [start, end), as ClickHouse buckets facts in `tz`:
    hours, days, ISO weeks (Monday) and calendar months of the business time zone."""
    if (end - start).total_seconds() / BUCKET_SECONDS[interval] > MAX_BUCKETS:
        raise BadRequest(f"the range holds more than {MAX_BUCKETS} {interval} buckets: narrow from/to")
    local = start.astimezone(tz)
    starts: list[datetime] = []
    if interval == "hour":
        current = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        while current < end:
            starts.append(current)
            current += timedelta(hours=1)
        return starts
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    while True:
        current = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
        if current >= end:
            return starts
        starts.append(current)
        if interval == "day":
            day += timedelta(days=1)
        elif interval == "week":
            day += timedelta(days=7)
        else:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)


def period_starts(now: datetime, tz: ZoneInfo) -> dict[str, datetime | None]:
    """all_time, today, week_to_date (since Monday) and month_to_date, in the business time zone."""
    today = now.astimezone(tz).date()
    midnight = datetime.combine(today, time(), tzinfo=tz)
    return {
        "all_time": None,
        "today": midnight.astimezone(UTC),
        "week_to_date": datetime.combine(
            today - timedelta(days=today.weekday()), time(), tzinfo=tz
        ).astimezone(UTC),
        "month_to_date": datetime.combine(today.replace(day=1), time(), tzinfo=tz).astimezone(UTC),
    }


def iso_utc(moment: datetime) -> str:
    """UTC, millisecond precision, with a Z: 2024-05-01T05:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
