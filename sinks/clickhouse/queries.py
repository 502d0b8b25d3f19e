"""The analytics reads behind the API, exact under replay (FINAL collapses superseded versions)."""

from typing import NotRequired, TypedDict

from sinks.clickhouse.client import ClickHouse


class CurrencyTotals(TypedDict):
    gross: int
    refunds: int
    net: int
    disputes: NotRequired[int]
    fees: NotRequired[int]
    failed_payments: NotRequired[int]


# Per payment first: its refunds are max(individual refunds, the charges' refunded totals), so a
# refund reported both ways counts once (see schemas/revenue.py RevenueKind). Disputes count while
# their money is withdrawn or lost; failed payments are a count, never money.
# Refunds are capped at the payment once it is known, mirroring the PostgreSQL rule that refunds never
# exceed their charge (a refused refund still reaches this table, which has no such constraint).
# net = gross - refunds - disputes (fees are reported beside it, in the currency they were charged in).
TOTALS_SQL = """
SELECT currency,
       sum(p_gross) AS gross,
       sum(if(p_gross > 0, least(p_refunds, p_gross), p_refunds)) AS refunds,
       sum(p_disputes) AS disputes,
       sum(p_fees) AS fees,
       sum(p_failed) AS failed_payments
FROM (
    SELECT payment_key,
           currency,
           sumIf(amount_minor, kind = 'payment' AND counted) AS p_gross,
           greatest(sumIf(amount_minor, kind = 'refund' AND counted),
                    sumIf(amount_minor, kind = 'refunded_total' AND counted)) AS p_refunds,
           sumIf(amount_minor, kind = 'dispute' AND counted) AS p_disputes,
           sumIf(amount_minor, kind = 'fee' AND counted) AS p_fees,
           countIf(kind = 'failed_payment') AS p_failed
    FROM revenue_facts FINAL
    WHERE livemode = {livemode:Bool} AND ({entity:String} = '' OR entity = {entity:String})
    GROUP BY payment_key, currency
)
GROUP BY currency
ORDER BY currency
"""


def revenue_totals(
    clickhouse: ClickHouse, livemode: bool, entity: str | None = None
) -> dict[str, CurrencyTotals]:
    """Per lowercase currency, integer minor units: gross, refunds, disputes, net (= gross - refunds
    - disputes), fees, and the number of failed payments. `entity` narrows to one business entity."""
    rows = clickhouse.query_rows(TOTALS_SQL, {"livemode": livemode, "entity": entity or ""})
    return {
        currency: {
            "gross": int(gross),
            "refunds": int(refunds),
            "net": int(gross) - int(refunds) - int(disputes),
            "disputes": int(disputes),
            "fees": int(fees),
            "failed_payments": int(failed),
        }
        for currency, gross, refunds, disputes, fees, failed in rows
    }
