"""Showing integer minor units to humans (alert titles, Slack). Arithmetic never uses floats."""

# ISO 4217 currencies whose minor unit is not 1/100 (Stripe's list of zero- and three-decimal ones).
_ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's major unit."""
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


def format_money(minor: int, currency: str) -> str:
    """1234567, "usd" -> "12,345.67 USD"; exact (integer arithmetic), sign kept."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**digits)
    text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{sign}{text} {currency.upper()}".strip()
