"""Dated FX rates that operators maintain: 1 `base` = `rate` `quote` from `date` on.

A rate is a decimal (never a float) with at most 18 fractional digits, the precision both stores
keep (numeric(38, 18) in PostgreSQL, Decimal(38, 18) in ClickHouse), so what is loaded is exactly
what conversions use.
"""

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]


class FxRate(BaseModel):
    model_config = ConfigDict(frozen=True)

    date: dt.date = Field(description="First day (business time zone) the rate applies to.")
    base: Currency = Field(description="Currency converted from, lowercase ISO 4217.")
    quote: Currency = Field(description="Currency converted to, lowercase ISO 4217.")
    rate: Decimal = Field(
        gt=0, max_digits=38, decimal_places=18, description="Units of quote per unit of base."
    )

    @field_validator("base", "quote", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _distinct(self) -> "FxRate":
        if self.base == self.quote:
            raise ValueError("base and quote must differ")
        return self


class FxRateBatch(BaseModel):
    """What `revstream fx load` sends to the running process (POST /api/v1/fx/rates)."""

    rates: list[FxRate] = Field(min_length=1, max_length=1_000_000)
