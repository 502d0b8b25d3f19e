"""The analytics reads behind the API, exact under replay (FINAL collapses superseded versions)."""

from typing import TypedDict

from sinks.clickhouse.client import ClickHouse


class CurrencyTotals(TypedDict):
    gross: int
    refunds: int
    net: int


TOTALS_SQL = """
SELECT currency,
       sumIf(amount_minor, kind = 'payment' AND counted) AS gross,
       sumIf(amount_minor, kind = 'refund' AND counted) AS refunds
FROM revenue_facts FINAL
WHERE livemode = {livemode:Bool}
GROUP BY currency
ORDER BY currency
"""


def revenue_totals(clickhouse: ClickHouse, livemode: bool) -> dict[str, CurrencyTotals]:
    """Gross, refunds and net per lowercase currency, integer minor units."""
    rows = clickhouse.query_rows(TOTALS_SQL, {"livemode": livemode})
    return {
        currency: {"gross": int(gross), "refunds": int(refunds), "net": int(gross) - int(refunds)}
        for currency, gross, refunds in rows
    }
