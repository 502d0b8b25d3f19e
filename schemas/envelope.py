"""The raw envelope: what ingest puts on revenue.raw.v1 after verifying a request."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# The largest request body ingest accepts at all. A raw envelope carries the body base64-encoded
# (4/3 of it) and a dead letter carries the envelope base64-encoded again (16/9 of the body in all):
# at 512 KiB both stay under 1,000,000 bytes, inside Kafka's default record limit (1 MiB for the
# producer and the broker), so no broker or client needs special settings and a valid request can
# never be refused by Kafka (which would answer the provider 503 for ever). Stripe's and Gumroad's
# events are a few KiB; tests/unit/test_envelope_limits.py builds both at this size.
MAX_BODY_BYTES = 512 * 1024


class Source(StrEnum):
    STRIPE = "stripe"
    GUMROAD = "gumroad"
    MANUAL = "manual"


class RawEnvelope(BaseModel):
    """A verified provider request, with the exact bytes the provider sent.

    The bytes are kept because signatures cover bytes and replays must re-derive from the
    original, not from our reading of it.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    source: Source = Field(description="Which provider (or operator path) sent the request.")
    endpoint: str = Field(description="Configured endpoint name the request arrived on.")
    entity: str = Field(description="Business entity the money belongs to (from the endpoint).")
    provider_event_id: str = Field(description="The provider's own event id; the dedupe key.")
    event_type: str = Field(description="Provider event type, e.g. charge.succeeded.")
    livemode: bool = Field(description="False for provider test-mode traffic.")
    received_at: datetime = Field(description="When ingest received the request (UTC).")
    content_type: str = Field(description="Content-Type header of the original request.")
    body: bytes = Field(description="The request body exactly as received.")
    backfilled: bool = Field(default=False, description="True when fetched from a provider API, not pushed.")
    replay: int = Field(
        default=0,
        ge=0,
        description="0 for the original delivery; N for an operator's Nth replay (`revstream events replay`).",
    )

    @property
    def dedupe_key(self) -> str:
        """Deliveries of one provider event share this key; an operator's replay does not, so it
        is derived again (into the same deterministic records)."""
        base = f"{self.source.value}:{self.provider_event_id}"
        return f"{base}#replay{self.replay}" if self.replay else base

    def to_bytes(self) -> bytes:
        """model_dump_json().encode(), byte for byte, without the str round trip and the Python
        wrapper (half the cost on a busy processor)."""
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> "RawEnvelope":
        """cls.model_validate_json(data), straight through the model's validator."""
        return cls.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
