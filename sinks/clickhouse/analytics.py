"""Totals, trends and reporting-currency conversion over the deduplicated facts.

Every read goes through `revenue_facts_current` (revenue_facts FINAL, see
deploy/clickhouse/0030_analytics.sql), so replays and duplicate inserts never change a figure.
Money stays integer minor units; rates (ratios) are the only floats. Reporting-currency amounts are
converted per fact with the latest rate on or before the fact's business-day date, rounded half away
from zero to the reporting currency's minor unit; a fact without a rate is left out of the reporting
figures and flagged in `missing_rates`, never counted as zero silently.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.client import ClickHouse

# ISO 4217 minor-unit exponents that differ from 2 (Stripe's zero- and three-decimal lists).
ZERO_DECIMAL = (
    "bif clp djf gnf isk jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = "bhd iqd jod kwd lyd omr tnd".split()  # noqa: SIM905

GROUP_COLUMNS = ("source", "entity", "currency", "product")
INTERVALS = ("hour", "day", "week", "month")

# (output name, aggregate, per-fact expression); `count` counts facts where the expression holds.
MEASURES: tuple[tuple[str, str, str], ...] = (
    ("gross", "sum", "gross_minor"),
    ("refunds", "sum", "refund_minor"),
    ("disputes", "sum", "dispute_minor"),
    ("payments", "count", "is_payment"),
    ("refund_count", "count", "is_refund"),
    ("dispute_count", "count", "is_dispute"),
    ("failed_payments", "count", "is_failed_payment"),
    ("facts", "count", "true"),
)
REPORTING_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("rep_gross", "sum", "rep_gross_minor"),
    ("rep_refunds", "sum", "rep_refund_minor"),
    ("rep_disputes", "sum", "rep_dispute_minor"),
    ("unrated_facts", "count", "unrated"),
)


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in `currency`'s minor unit (jpy 0, usd 2, kwd 3)."""
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def _exponent_sql(column: str) -> str:
    zero = ", ".join(f"'{c}'" for c in ZERO_DECIMAL)
    three = ", ".join(f"'{c}'" for c in THREE_DECIMAL)
    return f"multiIf({column} IN ({zero}), 0, {column} IN ({three}), 3, 2)"


@dataclass(frozen=True)
class FactFilter:
    """Which facts a read covers. Times are UTC instants: start inclusive, end exclusive."""

    livemode: bool = True
    source: str | None = None
    entity: str | None = None
    currency: str | None = None
    kind: str | None = None
    product: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        conds = ["livemode = {f_livemode:Bool}"]
        params: dict[str, Any] = {"f_livemode": self.livemode}
        for name in ("source", "entity", "currency", "kind", "product"):
            value = getattr(self, name)
            if value is not None:
                conds.append(f"{name} = {{f_{name}:String}}")
                params[f"f_{name}"] = value
        if self.start is not None:
            conds.append("occurred_at >= fromUnixTimestamp64Milli({f_start:Int64}, 'UTC')")
            params["f_start"] = epoch_ms(self.start)
        if self.end is not None:
            conds.append("occurred_at < fromUnixTimestamp64Milli({f_end:Int64}, 'UTC')")
            params["f_end"] = epoch_ms(self.end)
        return " AND ".join(conds), params


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: localize it to the business time zone first")
    return int(moment.timestamp() * 1000)


def _source_sql(flt: FactFilter, tz: str, reporting: str | None) -> tuple[str, dict[str, Any]]:
    """The facts one read covers, with business_date and (given a reporting currency) the converted
    measures: rep_* = 0 and `unrated` = true when a money-carrying fact has no rate."""
    where, params = flt.where()
    params["tz"] = tz
    base = (
        "SELECT *, toDate(occurred_at, {tz:String}) AS business_date "
        f"FROM revenue_facts_current WHERE {where}"
    )
    if reporting is None:
        return (
            f"(SELECT *, 0 AS rep_gross_minor, 0 AS rep_refund_minor, 0 AS rep_dispute_minor, false AS unrated FROM ({base}))",
            params,
        )
    params["rc"] = reporting
    target_exp = currency_exponent(reporting)
    # ASOF: for each fact, the rate with the greatest date <= its business date (pair base->rc).
    joined = (
        "SELECT f.*, (f.currency = {rc:String} OR r.base != '') AS has_rate, "
        "if(f.currency = {rc:String}, toDecimal128(1, 18), r.rate) AS fx_rate, "
        f"{target_exp} - {_exponent_sql('f.currency')} AS fx_shift "
        f"FROM ({base}) AS f ASOF LEFT JOIN ("
        "SELECT base, date, argMax(rate, loaded_at) AS rate FROM fx_rates "
        "WHERE quote = {rc:String} GROUP BY base, date"
        ") AS r ON f.currency = r.base AND f.business_date >= r.date"
    )

    def convert(column: str) -> str:
        scaled = f"toDecimal256({column}, 0) * fx_rate"
        shifted = (
            f"multiIf(fx_shift = 0, {scaled}, fx_shift > 0, {scaled} * toDecimal256(intExp10(fx_shift), 0), "
            f"{scaled} / toDecimal256(intExp10(-fx_shift), 0))"
        )
        return f"if(has_rate, toInt64(round({shifted}, 0)), 0)"

    return (
        f"(SELECT *, {convert('gross_minor')} AS rep_gross_minor, {convert('refund_minor')} AS rep_refund_minor, "
        f"{convert('dispute_minor')} AS rep_dispute_minor, "
        "(NOT has_rate AND (gross_minor + refund_minor + dispute_minor) > 0) AS unrated "
        f"FROM ({joined}))"
    ), params


def _aggregates(measures: Sequence[tuple[str, str, str]], cond: str | None, suffix: str) -> list[str]:
    out = []
    for name, agg, expr in measures:
        if agg == "sum":
            out.append(
                f"sumIf({expr}, {cond}) AS {name}{suffix}" if cond else f"sum({expr}) AS {name}{suffix}"
            )
        else:
            test = f"({expr}) AND ({cond})" if cond else expr
            out.append(f"countIf({test}) AS {name}{suffix}")
    return out


def _unrated_dates(cond: str | None, suffix: str) -> list[str]:
    test = f"unrated AND ({cond})" if cond else "unrated"
    return [
        f"minIf(business_date, {test}) AS unrated_from{suffix}",
        f"maxIf(business_date, {test}) AS unrated_to{suffix}",
    ]


def _rows(clickhouse: ClickHouse, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    def query(client: Client) -> list[dict[str, Any]]:
        result = client.query(sql, parameters=params)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    return clickhouse.run(query)


def ratio(numerator: int, denominator: int) -> float | None:
    """A rate rounded to 6 places; None when there is nothing to divide by."""
    return round(numerator / denominator, 6) if denominator else None


def money_block(row: Mapping[str, Any], suffix: str = "") -> dict[str, Any]:
    """Per-currency figures: money in minor units, counts, and the refund / dispute / failure rates.
    refund_rate = refunds / gross (amount), dispute_rate = disputes / payments (count),
    failed_payment_rate = failed / (payments + failed) (count)."""
    gross, refunds, disputes = (int(row[f"{k}{suffix}"]) for k in ("gross", "refunds", "disputes"))
    payments, refund_count, dispute_count, failed = (
        int(row[f"{k}{suffix}"]) for k in ("payments", "refund_count", "dispute_count", "failed_payments")
    )
    return {
        "gross": gross,
        "refunds": refunds,
        "disputes": disputes,
        "net": gross - refunds - disputes,
        "payments": payments,
        "refund_count": refund_count,
        "dispute_count": dispute_count,
        "failed_payments": failed,
        "refund_rate": ratio(refunds, gross),
        "dispute_rate": ratio(dispute_count, payments),
        "failed_payment_rate": ratio(failed, payments + failed),
    }


@dataclass
class Reporting:
    """Reporting-currency sums and the currencies / dates that had no rate."""

    currency: str
    gross: int = 0
    refunds: int = 0
    disputes: int = 0
    missing: dict[str, list[Any]] = field(default_factory=dict)  # currency -> [first, last, records]

    def add(self, row: Mapping[str, Any], suffix: str = "") -> None:
        self.gross += int(row[f"rep_gross{suffix}"])
        self.refunds += int(row[f"rep_refunds{suffix}"])
        self.disputes += int(row[f"rep_disputes{suffix}"])
        count = int(row[f"unrated_facts{suffix}"])
        if count:
            first, last = row[f"unrated_from{suffix}"], row[f"unrated_to{suffix}"]
            seen = self.missing.setdefault(row["currency"], [first, last, 0])
            seen[0], seen[1], seen[2] = min(seen[0], first), max(seen[1], last), seen[2] + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "gross": self.gross,
            "refunds": self.refunds,
            "disputes": self.disputes,
            "net": self.gross - self.refunds - self.disputes,
            "missing_rates": missing_rates_list(self.missing, self.currency),
        }


def missing_rates_list(missing: Mapping[str, list[Any]], quote: str) -> list[dict[str, Any]]:
    return [
        {
            "base": currency,
            "quote": quote,
            "first_date": _iso_date(first),
            "last_date": _iso_date(last),
            "records_excluded": records,
        }
        for currency, (first, last, records) in sorted(missing.items())
    ]


def _iso_date(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def period_totals(
    clickhouse: ClickHouse,
    flt: FactFilter,
    periods: Mapping[str, datetime | None],
    tz: str,
    reporting: str | None,
) -> dict[str, dict[str, Any]]:
    """For each named period (facts at or after its start; None = all time), per-currency figures
    and, given a reporting currency, the converted sums: {period: {"currencies": ..., "reporting": ...}}."""
    source, params = _source_sql(flt, tz, reporting)
    columns = ["currency"]
    for index, (_, start) in enumerate(periods.items()):
        cond = None
        if start is not None:
            cond = f"occurred_at >= fromUnixTimestamp64Milli({{p{index}:Int64}}, 'UTC')"
            params[f"p{index}"] = epoch_ms(start)
        columns += _aggregates(MEASURES, cond, f"_{index}")
        if reporting is not None:
            columns += _aggregates(REPORTING_MEASURES, cond, f"_{index}")
            columns += _unrated_dates(cond, f"_{index}")
    sql = f"SELECT {', '.join(columns)} FROM {source} GROUP BY currency ORDER BY currency"
    rows = _rows(clickhouse, sql, params)
    out: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(periods):
        suffix = f"_{index}"
        currencies = {row["currency"]: money_block(row, suffix) for row in rows if row[f"facts{suffix}"]}
        block: dict[str, Any] = {"currencies": currencies}
        if reporting is not None:
            rep = Reporting(reporting)
            for row in rows:
                rep.add(row, suffix)
            block["reporting"] = rep.as_dict()
        out[name] = block
    return out


def bucket_sql(interval: str) -> str:
    """Epoch seconds of the start of the fact's bucket in the business time zone."""
    if interval == "hour":
        return "toUnixTimestamp(toStartOfHour(occurred_at, {tz:String}))"
    if interval == "day":
        return "toUnixTimestamp(toStartOfDay(occurred_at, {tz:String}))"
    if interval == "week":  # ISO weeks: Monday 00:00 in the business time zone
        return "toUnixTimestamp(toDateTime(toMonday(occurred_at, {tz:String}), {tz:String}))"
    if interval == "month":
        return "toUnixTimestamp(toDateTime(toStartOfMonth(occurred_at, {tz:String}), {tz:String}))"
    raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")


def trend_rows(
    clickhouse: ClickHouse,
    flt: FactFilter,
    interval: str,
    group_by: Sequence[str],
    tz: str,
    reporting: str | None,
) -> list[dict[str, Any]]:
    """One row per (bucket start in epoch seconds `bucket`, group values, currency) with the measures."""
    unknown = [g for g in group_by if g not in GROUP_COLUMNS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}")
    source, params = _source_sql(flt, tz, reporting)
    keys = [g for g in group_by if g != "currency"] + ["currency"]
    columns = [f"{bucket_sql(interval)} AS bucket", *keys, *_aggregates(MEASURES, None, "")]
    if reporting is not None:
        columns += _aggregates(REPORTING_MEASURES, None, "") + _unrated_dates(None, "")
    group = ", ".join(["bucket", *keys])
    sql = f"SELECT {', '.join(columns)} FROM {source} GROUP BY {group} ORDER BY {group}"
    return _rows(clickhouse, sql, params)


EVENT_COLUMNS = (
    "record_id",
    "kind",
    "source",
    "entity",
    "payment_key",
    "amount_minor",
    "currency",
    "livemode",
    "counted",
    "status",
    "customer_id",
    "product",
    "occurred_at",
    "version",
    "source_event_id",
    "source_event_type",
)


def events_page(
    clickhouse: ClickHouse, flt: FactFilter, after: tuple[int, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` facts (latest versions) ordered by (occurred_at, record_id), strictly after the
    keyset `after` = (occurred_at epoch ms, record_id). Keyset, not OFFSET: rows inserted while a
    client pages never shift the pages it has not read yet. The time comes back as `occurred_ms`."""
    where, params = flt.where()
    if after is not None:
        where += " AND (toUnixTimestamp64Milli(occurred_at), record_id) > ({k_ms:Int64}, {k_id:String})"
        params["k_ms"], params["k_id"] = after
    params["limit"] = limit
    columns = ", ".join(
        "toUnixTimestamp64Milli(occurred_at) AS occurred_ms" if c == "occurred_at" else c
        for c in EVENT_COLUMNS
    )
    sql = (
        f"SELECT {columns} FROM revenue_facts_current WHERE {where} "
        "ORDER BY occurred_at, record_id LIMIT {limit:UInt32}"
    )
    return _rows(clickhouse, sql, params)
