"""MRR of one Stripe subscription payload: a pure function, exact until one final rounding.

The convention (also in the README, section "Subscriptions and MRR"):
- An item contributes unit amount x billed quantity, normalized to one month by its price's
  interval and interval_count: month / count, year / (12 x count), week x 52 / (12 x count),
  day x 365 / (12 x count). Arithmetic is exact (fractions); the subscription's sum is rounded
  once, half up, to integer minor units. ARR is 12 x that integer.
- Only statuses `active` and `past_due` carry MRR (past_due: the customer is still subscribed while
  Stripe retries the payment). `trialing`, `incomplete`, `incomplete_expired`, `unpaid`, `paused`,
  `canceled`, a customer.subscription.deleted event, and any subscription whose collection is paused
  (`pause_collection` set) have MRR 0.
- Excluded items: metered ones (usage_type=metered, or a billing meter), and free ones contribute 0
  by their amount. Tiered prices are priced from their tiers (volume or graduated) when the payload
  includes them; a tiered price without tiers cannot be priced and fails the event with that reason.
- Discounts: only coupons with duration=forever reduce MRR (once / repeating ones end, so they do not
  change the recurring run rate). percent_off applies to the sum; amount_off is per invoice, so it is
  normalized with the billing interval of the subscription's first counted item. Several forever
  discounts apply percentages first, then amounts; MRR never goes below 0. Discounts that are only
  ids (not expanded in the payload) and item-level discounts are not visible here and are ignored.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from processors.revenue.common import DerivationError, object_id
from schemas.subscriptions import DiscountSnapshot, SubscriptionItemSnapshot

# How many months one interval is; a price's monthly amount is amount / (months x interval_count).
MONTHS_PER_INTERVAL: dict[str, Fraction] = {
    "month": Fraction(1),
    "year": Fraction(12),
    "week": Fraction(12, 52),
    "day": Fraction(12, 365),
}
MRR_STATUSES = frozenset({"active", "past_due"})


class MixedCurrencies(Exception):
    """The payload prices items in several currencies, which Stripe does not allow: an inconsistent
    payload, to be recorded and not counted."""


@dataclass(frozen=True)
class Pricing:
    """What the MRR of one subscription payload is made of."""

    mrr_minor: int
    currency: str
    items: list[SubscriptionItemSnapshot]
    discounts: list[DiscountSnapshot]


def _exact(value: Any, what: str) -> Fraction | None:
    """An exact non-negative amount from an int or a decimal string; floats are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise DerivationError(f"{what} is not an integer or a decimal string")
    if isinstance(value, int):
        amount = Fraction(value)
    elif isinstance(value, str):
        try:
            parsed = Decimal(value)
        except InvalidOperation as exc:
            raise DerivationError(f"{what} is not a decimal number") from exc
        if not parsed.is_finite():
            raise DerivationError(f"{what} is not a finite number")
        amount = Fraction(parsed)
    else:
        raise DerivationError(f"{what} is not a number")
    if amount < 0:
        raise DerivationError(f"{what} is negative")
    return amount


def _round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def _decimal_text(value: Fraction | None) -> str | None:
    if value is None:
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return str(Decimal(value.numerator) / Decimal(value.denominator))


def _tiered_total(price: dict[str, Any], quantity: int, what: str) -> Fraction:
    """The per-period amount of a tiered price for `quantity` units (Stripe's volume/graduated rules)."""
    tiers = price.get("tiers")
    if not isinstance(tiers, list) or not tiers or not all(isinstance(t, dict) for t in tiers):
        raise DerivationError(f"{what} is tiered but the payload does not include its tiers")
    if quantity == 0:
        return Fraction(0)

    def unit(tier: dict[str, Any]) -> Fraction:
        return (
            _exact(tier.get("unit_amount_decimal"), f"{what}.tiers.unit_amount_decimal")
            or _exact(tier.get("unit_amount"), f"{what}.tiers.unit_amount")
            or Fraction(0)
        )

    def flat(tier: dict[str, Any]) -> Fraction:
        return (
            _exact(tier.get("flat_amount_decimal"), f"{what}.tiers.flat_amount_decimal")
            or _exact(tier.get("flat_amount"), f"{what}.tiers.flat_amount")
            or Fraction(0)
        )

    def upper(tier: dict[str, Any]) -> int | None:
        bound = tier.get("up_to")
        return bound if isinstance(bound, int) and not isinstance(bound, bool) else None  # "inf" / None

    if price.get("tiers_mode") == "graduated":
        total, below = Fraction(0), 0
        for tier in tiers:
            bound = upper(tier)
            units = (quantity if bound is None else min(quantity, bound)) - below
            if units <= 0:
                break
            total += unit(tier) * units + flat(tier)
            below += units
        return total
    for tier in tiers:  # volume: every unit at the price of the tier the whole quantity falls in
        bound = upper(tier)
        if bound is None or quantity <= bound:
            return unit(tier) * quantity + flat(tier)
    raise DerivationError(f"{what} has no tier for quantity {quantity}")


def _billed_quantity(quantity: int, transform: Any) -> int:
    """Quantity after a price's transform_quantity (a plan's transform_usage): divide, then round."""
    if not isinstance(transform, dict):
        return quantity
    divide_by = transform.get("divide_by")
    if not isinstance(divide_by, int) or isinstance(divide_by, bool) or divide_by <= 0:
        return quantity
    whole, rest = divmod(quantity, divide_by)
    return whole + 1 if rest and transform.get("round") == "up" else whole


def _price_item(
    item: dict[str, Any], price: dict[str, Any], quantity: int
) -> tuple[SubscriptionItemSnapshot, Fraction, str | None, Fraction | None]:
    """One item: its snapshot, its exact monthly amount, its currency and its months per period."""
    recurring = price.get("recurring") if isinstance(price.get("recurring"), dict) else {}
    assert isinstance(recurring, dict)
    interval = recurring.get("interval") or price.get("interval")
    count = recurring.get("interval_count") or price.get("interval_count") or 1
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise DerivationError("subscription item interval_count is not a positive integer")
    usage_type = recurring.get("usage_type") or price.get("usage_type") or "licensed"
    if recurring.get("meter"):
        usage_type = "metered"
    currency = price.get("currency")
    what = f"price {price.get('id')}"
    transform = price.get("transform_quantity") or price.get("transform_usage")
    billed = _billed_quantity(quantity, transform)
    unit_amount: Fraction | None = None
    for field in ("unit_amount_decimal", "amount_decimal", "unit_amount", "amount"):
        unit_amount = _exact(price.get(field), f"{what}.{field}")
        if unit_amount is not None:
            break
    counted = usage_type == "licensed"
    months: Fraction | None = None
    period_amount = Fraction(0)
    if counted:
        if interval not in MONTHS_PER_INTERVAL:
            raise DerivationError(f"{what} has no known recurring interval ({interval!r})")
        months = MONTHS_PER_INTERVAL[str(interval)] * count
        if price.get("billing_scheme") == "tiered":
            period_amount = _tiered_total(price, billed, what)
        elif unit_amount is None:
            raise DerivationError(f"{what} has no unit amount")
        else:
            period_amount = unit_amount * billed
    snapshot = SubscriptionItemSnapshot(
        item_id=object_id(item.get("id")),
        price_id=object_id(price.get("id")),
        quantity=billed,
        unit_amount=_decimal_text(unit_amount),
        interval=interval if isinstance(interval, str) else None,
        interval_count=count,
        usage_type=str(usage_type),
        counted=counted,
    )
    monthly = period_amount / months if months else Fraction(0)
    return snapshot, monthly, currency.lower() if isinstance(currency, str) else None, months


def _items(subscription: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any], int]]:
    """(item, price or plan, quantity) for each item; pre-2017 payloads have one plan + quantity."""
    items = subscription.get("items")
    if isinstance(items, dict):
        items = items.get("data")
    default_quantity = subscription.get("quantity")
    out = []
    if isinstance(items, list) and items:
        for item in items:
            if not isinstance(item, dict):
                raise DerivationError("subscription.items holds something that is not an item")
            price = item.get("price") if isinstance(item.get("price"), dict) else item.get("plan")
            if not isinstance(price, dict):
                raise DerivationError(f"subscription item {item.get('id')} has neither price nor plan")
            out.append((item, price, item.get("quantity", 1)))
    elif isinstance(subscription.get("plan"), dict):
        out.append(({}, subscription["plan"], default_quantity if default_quantity is not None else 1))
    result = []
    for item, price, quantity in out:
        if quantity is None:
            quantity = 1
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise DerivationError("subscription item quantity is not a non-negative integer")
        result.append((item, price, quantity))
    return result


def _discounts(subscription: dict[str, Any]) -> list[DiscountSnapshot]:
    """Expanded discounts from `discount` (until 2022) and `discounts` (since), deduplicated by id."""
    found: dict[str, dict[str, Any]] = {}
    candidates = [subscription.get("discount")]
    listed = subscription.get("discounts")
    if isinstance(listed, list):
        candidates += listed
    for index, discount in enumerate(candidates):
        if isinstance(discount, dict):
            found.setdefault(str(discount.get("id") or f"#{index}"), discount)
    snapshots = []
    for discount in found.values():
        coupon = discount.get("coupon")
        if not isinstance(coupon, dict) and isinstance(discount.get("source"), dict):
            coupon = discount["source"].get("coupon")  # 2025 API: discount.source.coupon
        if not isinstance(coupon, dict):
            continue  # only an id: the payload does not say what it is worth
        percent = coupon.get("percent_off")
        if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int | float)):
            raise DerivationError("coupon.percent_off is not a number")
        if percent is not None and not 0 <= percent <= 100:
            raise DerivationError("coupon.percent_off is not between 0 and 100")
        amount_off = coupon.get("amount_off")
        if amount_off is not None and (
            isinstance(amount_off, bool) or not isinstance(amount_off, int) or amount_off < 0
        ):
            raise DerivationError("coupon.amount_off is not a non-negative integer")
        currency = coupon.get("currency")
        snapshots.append(
            DiscountSnapshot(
                coupon_id=object_id(coupon.get("id")),
                duration=coupon.get("duration") if isinstance(coupon.get("duration"), str) else None,
                percent_off=str(Decimal(str(percent))) if percent is not None else None,
                amount_off=amount_off,
                currency=currency.lower() if isinstance(currency, str) else None,
            )
        )
    return snapshots


def subscription_pricing(subscription: dict[str, Any], status: str) -> Pricing:
    """The MRR of a subscription payload in the given (already normalized) status."""
    priced = [_price_item(item, price, quantity) for item, price, quantity in _items(subscription)]
    currencies = {currency for _, _, currency, _ in priced if currency}
    own = subscription.get("currency")
    if isinstance(own, str) and own:
        currencies.add(own.lower())
    if len(currencies) > 1:
        raise MixedCurrencies(
            f"subscription items are priced in several currencies ({', '.join(sorted(currencies))})"
        )
    if not currencies:
        raise DerivationError("subscription has no currency (no priced item and no subscription.currency)")
    currency = currencies.pop()
    discounts = _discounts(subscription)

    monthly = sum((m for _, m, _, _ in priced), Fraction(0))
    period_months = next((months for snap, _, _, months in priced if snap.counted and months), None)
    forever = [d for d in discounts if d.duration == "forever"]
    for discount in forever:
        if discount.percent_off is not None:
            monthly *= 1 - Fraction(Decimal(discount.percent_off)) / 100
    for discount in forever:
        if discount.amount_off is not None and period_months:
            if discount.currency not in (None, currency):
                raise DerivationError(
                    f"forever coupon {discount.coupon_id} is in {discount.currency}, the subscription in {currency}"
                )
            monthly -= Fraction(discount.amount_off) / period_months
    collecting = not subscription.get("pause_collection")
    mrr = _round_half_up(max(monthly, Fraction(0))) if status in MRR_STATUSES and collecting else 0
    return Pricing(
        mrr_minor=mrr,
        currency=currency,
        items=[snap for snap, _, _, _ in priced],
        discounts=discounts,
    )
