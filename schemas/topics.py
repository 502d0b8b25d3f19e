"""Topic names. The version suffix changes only when a message shape changes incompatibly."""

from dataclasses import dataclass

RAW = "revenue.raw.v1"
"""Verified provider requests, raw bytes kept (schemas.envelope.RawEnvelope)."""
EVENTS = "revenue.events.v1"
"""One derivation result per raw event (schemas.revenue.DerivedEvent)."""
DLQ = "revenue.dlq.v1"
"""Raw envelopes that could not be parsed or derived, with the reason."""

ALERTS = "revenue.alerts.v1"
"""Alerts raised by the anomaly processor (schemas.alerts.Alert), for the ClickHouse history."""

ORDERS = "revenue.orders.v1"
"""Order state transitions for downstream systems (schemas.order_events.OrderEvent): order.paid,
order.refunded. Deduplicate by `event_id`: each transition has exactly one id, and a crash may
publish it again."""

ALL = (RAW, EVENTS, DLQ, ALERTS, ORDERS)


@dataclass(frozen=True)
class Topics:
    """The concrete topic names of one deployment.

    `prefix` isolates deployments (and tests) that share a broker; production uses "".
    """

    prefix: str = ""

    @property
    def raw(self) -> str:
        return self.prefix + RAW

    @property
    def events(self) -> str:
        return self.prefix + EVENTS

    @property
    def dlq(self) -> str:
        return self.prefix + DLQ

    @property
    def alerts(self) -> str:
        return self.prefix + ALERTS

    @property
    def orders(self) -> str:
        return self.prefix + ORDERS

    def all(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in ALL)
