"""Manual / offline revenue entries (purchase orders, contracts): the body of
POST /api/v1/manual-entries and one row of a `revstream backfill csv` file.

Amounts are typed by people in major units ("1250.00" USD, "5000" JPY) and converted exactly to
minor units with the currency's exponent; more decimals than the currency has is an error,
never a rounding. No I/O here.
"""

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.money import to_minor_units

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}$"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a timezone, e.g. 2026-11-02T15:04:05Z")
    return value


class ManualEntry(BaseModel):
    """One offline money movement. `refund_of` names the entry (its Idempotency-Key or CSV id)
    a refund gives money back for, so the refund lands on that payment's order."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    kind: Literal["payment", "refund"]
    amount: Decimal = Field(gt=0, max_digits=20, description="Major units as typed, e.g. '1250.00'.")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
    occurred_at: Annotated[datetime, AfterValidator(_utc)] = Field(
        description="When the money moved (ISO 8601 with timezone, or a date: midnight UTC)."
    )
    entity: Text | None = Field(default=None, description="Business entity; default REVSTREAM_ENTITY.")
    customer: Text | None = None
    reference: Text | None = Field(default=None, description="PO or contract number.")
    product: Text | None = Field(default=None, description="What was sold (for trends by product).")
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    refund_of: Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN)] | None = None
    livemode: bool = True

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _date_is_midnight_utc(cls, value: object) -> object:
        if isinstance(value, str) and len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=None).isoformat() + "+00:00"
        return value

    @field_validator("currency")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @property
    def amount_minor(self) -> int:
        return to_minor_units(self.amount, self.currency)

    @model_validator(mode="after")
    def _consistent(self) -> "ManualEntry":
        try:
            to_minor_units(self.amount, self.currency)  # more decimals than the currency has: refused
        except ValueError as exc:
            raise ValueError(f"amount: {exc}") from None
        if self.refund_of is not None and self.kind != "refund":
            raise ValueError("refund_of: only for kind=refund")
        return self


def describe_errors(exc: ValidationError) -> str:
    """One line naming each problem by field, never echoing the input (it may hold card data)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)[:1000]
