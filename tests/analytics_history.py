"""A generated revenue history with versions, duplicates and replays, and an independent Python
computation of what the analytics API must answer for it (no SQL, no code from sinks/)."""

import asyncio
import csv
import functools
import io
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from schemas.envelope import Source
from schemas.revenue import DerivedEvent, EventState, RevenueKind, RevenueRecord, WebhookEventRecord
from sinks.clickhouse.client import ClickHouse
from sinks.clickhouse.facts import RevenueFactsStore

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 6, 15, 12, tzinfo=UTC)  # the injected "now"
EXPONENT = {"eur": 2, "usd": 2, "gbp": 2, "jpy": 0, "kwd": 3}
CURRENCIES = ["usd", "eur", "eur", "gbp", "jpy", "kwd"]
SOURCES = ["stripe", "stripe", "gumroad", "manual"]
ENTITIES = ["acme", "acme", "globex", "initech"]
PRODUCTS = [None, None, "basic", "pro"]
RATES = (
    [
        (date(2023, 12, 1) + timedelta(days=7 * i), "eur", "usd", Decimal("1.05") + Decimal(i) / 1000)
        for i in range(30)
    ]
    + [(date(2024, 3, 1) + timedelta(days=14 * i), "gbp", "usd", Decimal("1.2731")) for i in range(8)]
    + [(date(2023, 1, 1), "jpy", "usd", Decimal("0.006712"))]
)


@dataclass(frozen=True)
class Fact:
    record_id: str
    kind: str
    source: str
    entity: str
    payment_key: str
    amount_minor: int
    currency: str
    livemode: bool
    counted: bool
    status: str
    customer_id: str | None
    product: str | None
    occurred_at: datetime
    version: int
    source_event_id: str
    source_event_type: str


def _moment(rng: random.Random) -> datetime:
    span_ms = int((END - START).total_seconds() * 1000)
    return START + timedelta(milliseconds=rng.randrange(span_ms))


def generate(records: int, seed: int = 7) -> tuple[list[Fact], list[Fact]]:
    """(every version of every record, the insert stream: all versions + duplicates + a replay, shuffled)."""
    rng = random.Random(seed)
    versions: list[Fact] = []
    for n in range(records):
        roll = rng.random()
        kind = (
            "payment"
            if roll < 0.72
            else "refund"
            if roll < 0.90
            else "dispute"
            if roll < 0.94
            else "failed_payment"
        )
        currency = rng.choice(CURRENCIES)
        at = _moment(rng)
        fact = Fact(
            record_id=f"gen:{kind}:{n}",
            kind=kind,
            source=rng.choice(SOURCES),
            entity=rng.choice(ENTITIES),
            payment_key=f"pi_{n // 3}",
            amount_minor=rng.randint(1, 500_000),
            currency=currency,
            livemode=rng.random() < 0.9,
            counted=kind != "failed_payment" or rng.random() < 0.5,
            status="succeeded",
            customer_id=f"cus_{rng.randrange(5000)}" if rng.random() < 0.8 else None,
            product=rng.choice(PRODUCTS) if kind in ("dispute", "failed_payment") or n % 5 == 0 else None,
            occurred_at=at,
            version=int(at.timestamp()) * 1000 + rng.randrange(1000),
            source_event_id=f"evt_{n}_0",
            source_event_type=f"{kind}.created",
        )
        versions.append(fact)
        for step in range(rng.choice([0, 0, 0, 1, 2])):  # later versions: move in time, maybe stop counting
            later = fact.occurred_at + timedelta(seconds=rng.randint(1, 3 * 86400))
            fact = replace(
                fact,
                occurred_at=min(later, END - timedelta(seconds=1)),
                version=fact.version + rng.randint(1, 5_000_000),
                counted=fact.counted if rng.random() < 0.8 else not fact.counted,
                amount_minor=fact.amount_minor if rng.random() < 0.9 else rng.randint(1, 500_000),
                status="updated",
                source_event_id=f"evt_{n}_{step + 1}",
            )
            versions.append(fact)
    stream = versions + rng.sample(versions, len(versions) // 10)  # duplicate deliveries
    rng.shuffle(stream)
    stream += rng.sample(versions, len(versions) // 10)  # a replay of part of the log, at the end
    return versions, stream


def latest(versions: list[Fact]) -> list[Fact]:
    best: dict[str, Fact] = {}
    for fact in versions:
        if fact.record_id not in best or fact.version > best[fact.record_id].version:
            best[fact.record_id] = fact
    return list(best.values())


_EVENT = WebhookEventRecord(
    source=Source.STRIPE,
    provider_event_id="evt_generated",
    event_type="generated",
    entity="acme",
    livemode=True,
    received_at=START,
    event_created_at=START,
    state=EventState.PROCESSED,
)
_COLUMNS = [
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
]


def _csv_block(facts: list[Fact]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for f in facts:
        writer.writerow(
            [
                f.record_id,
                f.kind,
                f.source,
                f.entity,
                f.payment_key,
                f.amount_minor,
                f.currency,
                int(f.livemode),
                int(f.counted),
                f.status,
                f.customer_id or "",
                "\\N" if f.product is None else f.product,
                f.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                f.version,
                f.source_event_id,
                f.source_event_type,
            ]
        )
    return buffer.getvalue().encode()


def insert(clickhouse: ClickHouse, stream: list[Fact], batch: int = 5000) -> None:
    """Insert the stream in blocks of `batch` rows (ClickHouse collapses duplicates inside one block
    on insert, so copies in different blocks are what exercises FINAL). Every fourth block goes
    through the real sink store (RevenueFactsStore) for the payments and refunds RevenueRecord can
    carry; everything else is loaded as CSV with the same columns (much faster in Python)."""
    store = RevenueFactsStore(clickhouse)

    async def through_store(facts: list[Fact]) -> None:
        store.add(
            DerivedEvent(
                event=_EVENT,
                revenue=[
                    RevenueRecord.model_construct(  # valid by construction; validation is not under test
                        record_id=f.record_id,
                        kind=RevenueKind(f.kind),
                        source=Source(f.source),
                        entity=f.entity,
                        payment_key=f.payment_key,
                        amount_minor=f.amount_minor,
                        currency=f.currency,
                        livemode=f.livemode,
                        counted=f.counted,
                        status=f.status,
                        customer_id=f.customer_id,
                        occurred_at=f.occurred_at,
                        version=f.version,
                        source_event_id=f.source_event_id,
                        source_event_type=f.source_event_type,
                    )
                    for f in facts
                ],
            )
        )
        await store.flush()

    for index, offset in enumerate(range(0, len(stream), batch)):
        block = stream[offset : offset + batch]
        if index % 4 == 0:
            sinkable = [f for f in block if f.kind in ("payment", "refund") and f.product is None]
            asyncio.run(through_store(sinkable))
            block = [f for f in block if not (f.kind in ("payment", "refund") and f.product is None)]
        data = _csv_block(block)
        clickhouse.run(
            lambda c, data=data: c.raw_insert("revenue_facts", _COLUMNS, insert_block=data, fmt="CSV")
        )


# -- the independent computation ------------------------------------------------------------
def measures(facts: list[Fact]) -> dict[str, Any]:
    gross = sum(f.amount_minor for f in facts if f.kind == "payment" and f.counted)
    refunds = sum(f.amount_minor for f in facts if f.kind == "refund" and f.counted)
    disputes = sum(f.amount_minor for f in facts if f.kind == "dispute" and f.counted)
    payments = sum(1 for f in facts if f.kind == "payment" and f.counted)
    refund_count = sum(1 for f in facts if f.kind == "refund" and f.counted)
    dispute_count = sum(1 for f in facts if f.kind == "dispute")
    failed = sum(1 for f in facts if f.kind == "failed_payment")

    def rate(a: int, b: int) -> float | None:
        return round(a / b, 6) if b else None

    return {
        "gross": gross,
        "refunds": refunds,
        "disputes": disputes,
        "net": gross - refunds - disputes,
        "payments": payments,
        "refund_count": refund_count,
        "dispute_count": dispute_count,
        "failed_payments": failed,
        "refund_rate": rate(refunds, gross),
        "dispute_rate": rate(dispute_count, payments),
        "failed_payment_rate": rate(failed, payments + failed),
    }


def per_currency(facts: list[Fact]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Fact]] = defaultdict(list)
    for f in facts:
        groups[f.currency].append(f)
    return {c: measures(fs) for c, fs in sorted(groups.items())}


@functools.cache
def rate_for(currency: str, day: date, quote: str = "usd") -> Decimal | None:
    if currency == quote:
        return Decimal(1)
    found = [(d, r) for d, b, q, r in RATES if b == currency and q == quote and d <= day]
    return max(found)[1] if found else None


def convert(amount: int, currency: str, day: date, quote: str = "usd") -> int | None:
    rate = rate_for(currency, day, quote)
    if rate is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 80
        value = Decimal(amount) * rate * Decimal(10) ** (EXPONENT[quote] - EXPONENT[currency])
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def reporting(facts: list[Fact], tz: ZoneInfo, quote: str = "usd") -> dict[str, Any]:
    sums = {"gross": 0, "refunds": 0, "disputes": 0}
    missing: dict[str, list[Any]] = {}
    for f in facts:
        field = {"payment": "gross", "refund": "refunds", "dispute": "disputes"}.get(f.kind)
        if field is None or not f.counted:
            continue
        day = f.occurred_at.astimezone(tz).date()
        value = convert(f.amount_minor, f.currency, day, quote)
        if value is None:
            seen = missing.setdefault(f.currency, [day, day, 0])
            seen[0], seen[1], seen[2] = min(seen[0], day), max(seen[1], day), seen[2] + 1
        else:
            sums[field] += value
    return {
        "currency": quote,
        **sums,
        "net": sums["gross"] - sums["refunds"] - sums["disputes"],
        "missing_rates": [
            {
                "base": c,
                "quote": quote,
                "first_date": a.isoformat(),
                "last_date": b.isoformat(),
                "records_excluded": n,
            }
            for c, (a, b, n) in sorted(missing.items())
        ],
    }


def bucket_of(moment: datetime, interval: str, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    if interval == "hour":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    day = local.date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
