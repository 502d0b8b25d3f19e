"""Stripe ledger events beyond the payment itself: refund objects, disputes, failed payments, fees.

Identity rules (deterministic ids, so every event type that reports the same fact upserts one row):
- `stripe:refund:<re_...>`: a refund, whether listed in charge.refunded or sent as refund.* /
  charge.refund.updated. A refund.failed whose object still says `succeeded` contradicts itself
  and derives nothing (it must not override a good snapshot).
- `stripe:dispute:<dp_...>` (2013-era disputes had no id: one per charge, so the charge id): one
  row per dispute whose newest event decides its state. `counted` means the disputed amount is out
  of the merchant's balance now (funds withdrawn and not reinstated, or lost): what net subtracts.
  Inquiries (`warning_*`) move no money. A charge.dispute.closed whose dispute is not in a closed
  status contradicts itself and derives nothing.
- `stripe:failed_payment:<payment_key>`: a payment that failed at least once, from
  payment_intent.payment_failed, charge.failed, invoice.payment_failed or
  checkout.session.async_payment_failed; one row per payment however many attempts failed.
  Never counted as money (`counted` is False): it is a tally, not revenue.
- `stripe:fee:<payment_key>` (processing fee from an expanded balance_transaction, or the
  2013-era `charge.fee`), `stripe:fee:<payment_key>:application` (application_fee_amount) and
  `stripe:fee:dispute:<dispute>` (dispute fees from the dispute's balance transactions). A fee is
  in the currency it was charged in (a balance transaction's settlement currency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from processors.revenue.common import (
    TIE_SLOTS,
    DerivationError,
    currency_code,
    event_version,
    from_unix,
    minor_units,
    object_id,
    validated,
)
from schemas.envelope import Source
from schemas.revenue import OrderRecord, RevenueKind, RevenueRecord

if TYPE_CHECKING:
    from processors.revenue.stripe_events import EventContext

Derivation = tuple[list[RevenueRecord], list[OrderRecord]]

COUNTED_REFUND_STATUSES = {None, "succeeded", "pending", "requires_action"}
CLOSED_DISPUTE_STATUSES = {"won", "lost", "warning_closed", "charge_refunded"}
# Dispute events often share one `created` second (created + funds_withdrawn). Within a second the
# later lifecycle step wins, then the event-id hash: still one order for every delivery order.
DISPUTE_PHASES = ("created", "updated", "funds_withdrawn", "funds_reinstated", "closed")
_PHASE_SLOTS = TIE_SLOTS // len(DISPUTE_PHASES)


def ledger_record(
    ctx: EventContext,
    kind: RevenueKind,
    key: str,
    payment_key: str,
    amount: int,
    currency: str,
    *,
    counted: bool,
    status: str,
    customer: str | None = None,
    version: int | None = None,
) -> RevenueRecord:
    return validated(
        RevenueRecord,
        record_id=f"stripe:{kind.value}:{key}",
        kind=kind,
        source=Source.STRIPE,
        entity=ctx.entity,
        payment_key=payment_key,
        amount_minor=amount,
        currency=currency,
        livemode=ctx.livemode,
        counted=counted,
        status=status,
        customer_id=customer,
        occurred_at=from_unix(ctx.created),
        version=ctx.version if version is None else version,
        source_event_id=ctx.event_id,
        source_event_type=ctx.event_type,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- refunds as their own objects ---------------------------------------------------------------


def refund_object(ctx: EventContext, refund: dict[str, Any]) -> Derivation:
    """refund.created / refund.updated / refund.failed / charge.refund.updated: one refund's state."""
    status = refund.get("status")
    if ctx.event_type == "refund.failed" and status != "failed":
        return [], []  # INCONSISTENT: the type says failed, the object does not
    payment_key = object_id(refund.get("payment_intent")) or object_id(refund.get("charge"))
    if payment_key is None:
        raise DerivationError("refund has neither payment_intent nor charge")
    record = ledger_record(
        ctx,
        RevenueKind.REFUND,
        refund["id"],
        payment_key,
        minor_units(refund, "amount"),
        currency_code(refund),
        counted=status in COUNTED_REFUND_STATUSES,
        status=status or "succeeded",
    )
    return [record], []


def refunded_total(
    ctx: EventContext, charge: dict[str, Any], payment_key: str, listed_total: int, customer: str | None
) -> list[RevenueRecord]:
    """The charge's own refunded total, when its refund list does not explain all of it (the list
    is truncated, or omitted as in API versions since 2022-11-15, or 2012-era `refunded: true`)."""
    if charge.get("amount_refunded") is not None:
        total = minor_units(charge, "amount_refunded")
    elif charge.get("refunded") is True:
        total = minor_units(charge, "amount")  # 2012-era charges: refunded meant fully refunded
    else:
        return []
    if total <= listed_total:
        return []
    return [
        ledger_record(
            ctx,
            RevenueKind.REFUNDED_TOTAL,
            charge["id"],
            payment_key,
            total,
            currency_code(charge),
            counted=True,
            status="succeeded",
            customer=customer,
        )
    ]


# -- disputes -----------------------------------------------------------------------------------


def _withdrawn(dispute: dict[str, Any], status: Any) -> bool:
    """Is the disputed amount out of the balance, judged from a created/updated snapshot?"""
    if status == "lost":
        return True
    if status in CLOSED_DISPUTE_STATUSES or str(status).startswith("warning_"):
        return False  # won / closed / refunded instead, or an inquiry: no money held
    transactions = dispute.get("balance_transactions")
    if isinstance(transactions, list):
        moved = sum(_int(t.get("amount")) or 0 for t in transactions if isinstance(t, dict))
        return moved < 0  # withdrawals are negative, reinstatements positive
    return True  # before balance_transactions existed, a (non-inquiry) dispute withdrew the funds


def dispute_event(ctx: EventContext, dispute: dict[str, Any]) -> Derivation:
    """charge.dispute.*: the dispute's state and its money effect; dispute fees where stated."""
    phase = ctx.event_type.removeprefix("charge.dispute.")
    status = dispute.get("status")
    charge_id = object_id(dispute.get("charge"))
    dispute_key = object_id(dispute.get("id")) or charge_id
    payment_key = object_id(dispute.get("payment_intent")) or charge_id
    if dispute_key is None or payment_key is None:
        raise DerivationError("dispute has neither id nor charge")
    if phase == "funds_withdrawn":
        state, out = "funds_withdrawn", True
    elif phase == "funds_reinstated":
        state, out = "funds_reinstated", False
    elif phase == "closed":
        if status not in CLOSED_DISPUTE_STATUSES:
            return [], []  # INCONSISTENT: closed, but the dispute says it is still open
        state, out = str(status), status == "lost"
    else:
        state, out = str(status or "needs_response"), _withdrawn(dispute, status)
    rank = DISPUTE_PHASES.index(phase) if phase in DISPUTE_PHASES else 1
    version = ctx.created * TIE_SLOTS + rank * _PHASE_SLOTS + event_version(0, ctx.event_id) % _PHASE_SLOTS
    currency = currency_code(dispute)
    records = [
        ledger_record(
            ctx,
            RevenueKind.DISPUTE,
            dispute_key,
            payment_key,
            minor_units(dispute, "amount"),
            currency,
            counted=out,
            status=state,
            version=version,
        )
    ]
    transactions = [t for t in dispute.get("balance_transactions") or [] if isinstance(t, dict)]
    fees = [(_int(t.get("fee")), t.get("currency") or currency) for t in transactions]
    if fees and all(fee is not None for fee, _ in fees) and len({c for _, c in fees}) == 1:
        fee_total = sum(fee or 0 for fee, _ in fees)
        records.append(
            ledger_record(
                ctx,
                RevenueKind.FEE,
                f"dispute:{dispute_key}",
                payment_key,
                max(fee_total, 0),
                currency_code({"currency": fees[0][1]}),
                counted=fee_total > 0,
                status=state,
                version=version,
            )
        )
    return records, []


def legacy_charge_disputed(ctx: EventContext, charge: dict[str, Any]) -> Derivation:
    """2012-era `charge.disputed`: the charge itself, flagged; funds were withdrawn on dispute."""
    if charge.get("disputed") is not True:
        return [], []
    payment_key = object_id(charge.get("payment_intent")) or charge["id"]
    record = ledger_record(
        ctx,
        RevenueKind.DISPUTE,
        charge["id"],
        payment_key,
        minor_units(charge, "amount"),
        currency_code(charge),
        counted=True,
        status="needs_response",
        customer=object_id(charge.get("customer")),
    )
    return [record], []


# -- failed payments ----------------------------------------------------------------------------


def _failed(
    ctx: EventContext, payment_key: str, amount: int, currency: str, customer: str | None
) -> Derivation:
    record = ledger_record(
        ctx,
        RevenueKind.FAILED_PAYMENT,
        payment_key,
        payment_key,
        amount,
        currency,
        counted=False,
        status="failed",
        customer=customer,
    )
    return [record], []


def payment_intent_failed(ctx: EventContext, intent: dict[str, Any]) -> Derivation:
    customer = object_id(intent.get("customer"))
    return _failed(ctx, intent["id"], minor_units(intent, "amount"), currency_code(intent), customer)


def charge_failed(ctx: EventContext, charge: dict[str, Any]) -> Derivation:
    if charge.get("status", "failed") != "failed":
        return [], []  # a payload whose object contradicts its type carries nothing
    payment_key = object_id(charge.get("payment_intent")) or charge["id"]
    customer = object_id(charge.get("customer"))
    return _failed(ctx, payment_key, minor_units(charge, "amount"), currency_code(charge), customer)


def invoice_payment_failed(ctx: EventContext, invoice: dict[str, Any]) -> Derivation:
    """Keyed by the invoice's PaymentIntent (or charge), so it meets the charge.failed of the same
    attempt. 2012-era invoices state no currency: nothing to count in minor units, so nothing."""
    if invoice.get("currency") is None:
        return [], []
    charge = object_id(invoice.get("charge"))
    charge = charge if charge and charge.startswith(("ch_", "py_")) else None
    payment_key = object_id(invoice.get("payment_intent")) or charge or invoice["id"]
    customer = object_id(invoice.get("customer"))
    return _failed(ctx, payment_key, minor_units(invoice, "amount_due"), currency_code(invoice), customer)


def checkout_async_payment_failed(ctx: EventContext, session: dict[str, Any]) -> Derivation:
    payment_key = object_id(session.get("payment_intent")) or session["id"]
    customer = object_id(session.get("customer"))
    amount = minor_units(session, "amount_total")
    return _failed(ctx, payment_key, amount, currency_code(session), customer)


# -- fees ---------------------------------------------------------------------------------------


def _fee(ctx: EventContext, key: str, payment_key: str, amount: int, currency: str) -> RevenueRecord:
    return ledger_record(
        ctx, RevenueKind.FEE, key, payment_key, amount, currency, counted=True, status="succeeded"
    )


def payment_fees(ctx: EventContext, obj: dict[str, Any], payment_key: str) -> list[RevenueRecord]:
    """Fees a succeeded charge or PaymentIntent states: an expanded balance_transaction's fee (or
    the 2013-era charge.fee) and the application fee. Zero fees make no row."""
    records = []
    transaction = obj.get("balance_transaction")
    if isinstance(transaction, dict) and (_int(transaction.get("fee")) or 0) > 0:
        fee = minor_units(transaction, "fee")
        records.append(
            _fee(ctx, payment_key, payment_key, fee, currency_code(transaction, obj.get("currency")))
        )
    elif obj.get("object", "charge") == "charge" and (_int(obj.get("fee")) or 0) > 0:
        records.append(_fee(ctx, payment_key, payment_key, minor_units(obj, "fee"), currency_code(obj)))
    if (_int(obj.get("application_fee_amount")) or 0) > 0:
        amount = minor_units(obj, "application_fee_amount")
        records.append(_fee(ctx, f"{payment_key}:application", payment_key, amount, currency_code(obj)))
    return records


HANDLERS = {
    "refund.created": refund_object,
    "refund.updated": refund_object,
    "refund.failed": refund_object,
    "charge.refund.updated": refund_object,
    **{f"charge.dispute.{phase}": dispute_event for phase in DISPUTE_PHASES},
    "charge.disputed": legacy_charge_disputed,
    "payment_intent.payment_failed": payment_intent_failed,
    "charge.failed": charge_failed,
    "invoice.payment_failed": invoice_payment_failed,
    "checkout.session.async_payment_failed": checkout_async_payment_failed,
}
"""Ledger event types handled here; stripe_events adds them to its dispatch table."""
