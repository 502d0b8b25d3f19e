"""What goes on revenue.orders.v1: one message per order state transition, for fulfilment.

A downstream system fulfils on `order.paid` and revokes on `order.refunded`. Each transition has
one deterministic `event_id` (`<order_id>:paid`, `<order_id>:refunded`); the pipeline publishes
at least once, so a consumer that ignores ids it has seen handles each transition exactly once.
"""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.revenue import Currency, MinorUnits


class OrderEventType(StrEnum):
    PAID = "order.paid"
    REFUNDED = "order.refunded"


class OrderEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str = Field(description="Deterministic: `<order_id>:paid` or `<order_id>:refunded`.")
    type: OrderEventType
    order_id: str
    entity: str = Field(description="Business entity the money belongs to.")
    livemode: bool
    payment_key: str = Field(description="The payment behind the order (PaymentIntent or Charge id).")
    customer_id: str | None
    customer_email: str | None
    amount_minor: MinorUnits
    refunded_minor: MinorUnits = Field(description="Refunded so far when the transition was recorded.")
    currency: Currency
    recorded_at: datetime = Field(description="When the state store committed the transition (UTC).")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "OrderEvent":
        return cls.model_validate_json(data)
