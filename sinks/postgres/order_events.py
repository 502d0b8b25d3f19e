"""Order events (order.paid, order.refunded) through an outbox, published to revenue.orders.v1.

Exactly once per transition, as seen by a consumer that deduplicates by `event_id`:
- `RECORD_ORDER_EVENTS` runs in the state store's transaction, after the order's status was
  refreshed: the transition's row exists if and only if the state committed, and its
  deterministic id (`<order_id>:paid`, `<order_id>:refunded`) is the primary key, so replays,
  duplicates and reordered deliveries never make a second row.
- `publish_pending` publishes the rows not yet published (acks=all), and only then marks them
  published. A crash between the two publishes a row again with the same id: at least once on the
  wire, once after the consumer's dedupe.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from schemas.order_events import OrderEvent, OrderEventType

log = logging.getLogger("revstream.order_events")

# An order is paid as soon as it exists (only paid checkouts make orders); it is refunded once its
# refunds reach its amount. Refund first, order later (reordering) records both, paid first.
RECORD_ORDER_EVENTS = """
INSERT INTO order_events (event_id, event_type, order_id, entity, livemode, payment_key, customer_id,
                          customer_email, amount_minor, refunded_minor, currency)
SELECT o.order_id || t.suffix, t.event_type, o.order_id, o.entity, o.livemode, o.payment_key,
       o.customer_id, o.customer_email, o.amount_minor, o.refunded_minor, o.currency
FROM orders AS o
CROSS JOIN (VALUES (':paid', 'order.paid'), (':refunded', 'order.refunded')) AS t(suffix, event_type)
WHERE o.payment_key = ANY(%b::text[])
  AND (t.event_type = 'order.paid' OR o.status = 'refunded')
ORDER BY t.event_type
ON CONFLICT (event_id) DO NOTHING
"""

_PENDING = """
SELECT event_id, event_type, order_id, entity, livemode, payment_key, customer_id, customer_email,
       amount_minor, refunded_minor, currency, recorded_at
FROM order_events
WHERE published_at IS NULL
ORDER BY recorded_at, order_id, event_type
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

Publish = Callable[[OrderEvent], Awaitable[Any]]


def _event(row: tuple[Any, ...]) -> OrderEvent:
    (event_id, event_type, order_id, entity, livemode, payment_key, customer_id, email, amount, refunded) = (
        row[:10]
    )
    return OrderEvent(
        event_id=event_id,
        type=OrderEventType(event_type),
        order_id=order_id,
        entity=entity,
        livemode=livemode,
        payment_key=payment_key,
        customer_id=customer_id,
        customer_email=email,
        amount_minor=amount,
        refunded_minor=refunded,
        currency=row[10],
        recorded_at=row[11],
    )


async def publish_pending(pool: AsyncConnectionPool, publish: Publish, limit: int = 500) -> int:
    """Publish up to `limit` unpublished order events in recorded order; return how many.

    The rows stay locked (SKIP LOCKED: a second sink replica takes other rows) until they are
    marked published, in the same transaction, after every publish was acknowledged."""
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        await cur.execute(_PENDING, (limit,))
        events = [_event(row) for row in await cur.fetchall()]
        for event in events:
            await publish(event)
        # Acknowledged by the broker: only now mark them (a crash before this re-publishes them).
        if events:
            await cur.execute(
                "UPDATE order_events SET published_at = now() WHERE event_id = ANY(%s)",
                ([e.event_id for e in events],),
            )
    return len(events)


async def relay_order_events(
    pool: AsyncConnectionPool, publish: Publish, stop: asyncio.Event, interval_s: float = 0.5
) -> None:
    """Publish pending order events until `stop` is set: whatever a flush recorded, and whatever a
    crash left unpublished, goes out within about `interval_s`. Errors are logged and retried."""
    while not stop.is_set():
        try:
            while await publish_pending(pool, publish):
                pass
        except Exception:
            log.exception("order events: publishing failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
