"""Currency exponents: how many minor units make one major unit, per ISO 4217 code.

Used where people type amounts in major units (manual entries, CSV); provider payloads already
carry minor units. The zero- and three-decimal lists follow Stripe's documented currency table,
so a manual JPY or KWD amount means the same minor units as a Stripe one.
"""

from decimal import Decimal

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def exponent(currency: str) -> int:
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
