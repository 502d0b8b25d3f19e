"""derive(envelope) -> DerivedEvent: the processor's whole job, as a pure function."""

from processors.revenue.common import DerivationError, from_unix, parse_json, validated
from processors.revenue.gumroad_events import derive_gumroad
from processors.revenue.manual_events import derive_manual_entry
from processors.revenue.stripe_events import derive_stripe_event
from processors.subscriptions.stripe_billing import NOTHING as NO_BILLING
from processors.subscriptions.stripe_billing import derive_billing_event
from schemas.envelope import RawEnvelope, Source
from schemas.revenue import DerivedEvent, EventState


def derive(envelope: RawEnvelope) -> DerivedEvent:
    """Everything one verified raw event implies. Never raises for bad content: an event that
    cannot be derived comes back in state FAILED with the reason, so it stays inspectable."""
    if envelope.source is Source.GUMROAD:
        return derive_gumroad(envelope)  # records ignored pings with their reason
    created_at = None
    try:
        billing = NO_BILLING
        if envelope.source is Source.MANUAL:
            revenue, orders = derive_manual_entry(envelope)
            created_at = revenue[0].occurred_at
        elif envelope.source is Source.STRIPE:
            event = parse_json(envelope.body)
            if not isinstance(event, dict):
                raise DerivationError("body is not a JSON object")
            ctx, (revenue, orders) = derive_stripe_event(event, envelope.entity)
            billing = derive_billing_event(event, envelope.entity)
            created_at = from_unix(ctx.created) if ctx is not None else None
        else:
            raise DerivationError(f"no derivation for source {envelope.source.value} yet")
        state = EventState.PROCESSED if revenue or orders else EventState.IGNORED
        error = None
        if billing:
            state = EventState.PROCESSED
        elif state is EventState.IGNORED and billing.note:
            error = billing.note  # an inconsistent payload: recorded, not counted, and why
    except (DerivationError, ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
        revenue, orders, state = [], [], EventState.FAILED
        billing = NO_BILLING
        error = f"{type(exc).__name__}: {exc}"[:500]
    # One validation builds the event record inside the DerivedEvent (equal to
    # DerivedEvent(event=WebhookEventRecord(...), ...), about 1 us cheaper).
    return validated(
        DerivedEvent,
        event={
            "source": envelope.source,
            "provider_event_id": envelope.provider_event_id,
            "event_type": envelope.event_type,
            "entity": envelope.entity,
            "livemode": envelope.livemode,
            "received_at": envelope.received_at,
            "event_created_at": created_at,
            "state": state,
            "error": error,
        },
        revenue=revenue,
        orders=orders,
        subscription_snapshots=billing.snapshots,
        subscription_invoices=billing.invoices,
        invoice_payments=billing.invoice_payments,
    )
