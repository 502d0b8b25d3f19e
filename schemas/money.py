"""Currency exponents: how many minor units make one major unit, per ISO 4217 code, and the exact
conversions both ways. Arithmetic never uses floats.

Used where people type amounts in major units (manual entries, CSV) and where amounts are shown
to people (alert titles, Slack); provider payloads already carry minor units. The zero- and
three-decimal lists follow Stripe's documented currency table, so a manual JPY or KWD amount
means the same minor units as a Stripe one.
"""

from decimal import Decimal

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's major unit."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Exact conversion; raises ValueError when `amount` has more decimals than the currency."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency.upper()} has {exponent(currency)} decimal places; {amount} has more")
    return int(scaled)


def format_money(minor: int, currency: str) -> str:
    """1234567, "usd" -> "12,345.67 USD"; exact (integer arithmetic), sign kept."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{sign}{text} {currency.upper()}".strip()
