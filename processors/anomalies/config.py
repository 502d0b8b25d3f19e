"""Detector tuning and threshold rules, parsed once from configuration (JSON).

REVSTREAM_ALERT_RULES is a JSON list of threshold rules, for example
  [{"name": "big-payment", "type": "payment_above", "currency": "usd", "amount_minor": 500000},
   {"name": "slow-day", "type": "daily_revenue_below", "currency": "usd", "amount_minor": 100000,
    "entity": "default"}]
REVSTREAM_ANOMALY_TUNING is a JSON object overriding any field of DetectorConfig.
"""

import json
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.alerts import Severity
from schemas.revenue import Currency


class ConfigError(ValueError):
    """A rule or tuning value is malformed; the message names the setting and the problem."""


class DetectorConfig(BaseModel):
    """Tuning of the built-in detectors. Defaults suit a business with tens of payments per hour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline_weeks: int = Field(
        default=4, ge=1, le=26, description="Weeks of the same hour-of-week compared."
    )
    min_baseline_weeks: int = Field(
        default=3, ge=1, description="Fewer weeks of history: no seasonal verdict."
    )
    min_expected_payments: float = Field(
        default=8,
        ge=1,
        description="Volume guard: the baseline hour must expect at least this many payments.",
    )
    drop_ratio: float = Field(
        default=0.5, gt=0, lt=1, description="Drop: revenue at most (1 - ratio) x baseline."
    )
    spike_ratio: float = Field(default=3.0, gt=1, description="Spike: revenue at least ratio x baseline.")
    p_value: float = Field(
        default=1e-4,
        gt=0,
        lt=1,
        description="The payment (or refund...) count must be this improbable under "
        "a Poisson model of the baseline, so ordinary noise never alerts.",
    )
    rate_ratio: float = Field(
        default=3.0, gt=1, description="Rate spike: at least ratio x the trailing rate."
    )
    rate_min_events: int = Field(default=5, ge=1, description="Rate spike: at least this many refunds/...")
    rate_min_baseline: int = Field(
        default=50, ge=1, description="Rate spike: the trailing week must hold this many denominator events."
    )
    rate_floor: float = Field(default=0.005, ge=0, description="Trailing rates below this count as this.")
    duplicate_window_minutes: int = Field(
        default=10, ge=1, description="Same customer/amount/currency within."
    )
    lateness_minutes: int = Field(
        default=60, ge=0, description="An hour is judged once the watermark is this far past its end."
    )
    idle_partition_seconds: int = Field(
        default=300,
        ge=1,
        description="A partition silent this long (processing time) stops holding the watermark back.",
    )

    @property
    def lateness(self) -> timedelta:
        return timedelta(minutes=self.lateness_minutes)

    @property
    def duplicate_window(self) -> timedelta:
        return timedelta(minutes=self.duplicate_window_minutes)


class ThresholdRule(BaseModel):
    """A fixed threshold an operator configured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="Unique; part of the alert id.")
    type: Literal["payment_above", "daily_revenue_below"]
    currency: Currency
    amount_minor: int = Field(ge=0, le=2**62)
    entity: str | None = Field(default=None, description="Only this entity; unset: every entity.")
    livemode: bool = True
    severity: Severity = Severity.WARNING

    def applies_to(self, entity: str, currency: str, livemode: bool) -> bool:
        return (
            currency == self.currency
            and livemode == self.livemode
            and (self.entity is None or self.entity == entity)
        )


_RULES = TypeAdapter(list[ThresholdRule])


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def parse_rules(text: str | None) -> list[ThresholdRule]:
    """Parse REVSTREAM_ALERT_RULES; raise ConfigError naming the problem."""
    if not text:
        return []
    try:
        rules = _RULES.validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"REVSTREAM_ALERT_RULES: {_first_error(exc)}") from None
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ConfigError("REVSTREAM_ALERT_RULES: rule names must be unique")
    return rules


def parse_tuning(text: str | None) -> DetectorConfig:
    """Parse REVSTREAM_ANOMALY_TUNING (a JSON object of DetectorConfig fields)."""
    if not text:
        return DetectorConfig()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"REVSTREAM_ANOMALY_TUNING is not JSON: {exc.msg}") from None
    try:
        config = DetectorConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"REVSTREAM_ANOMALY_TUNING: {_first_error(exc)}") from None
    if config.min_baseline_weeks > config.baseline_weeks:
        raise ConfigError("REVSTREAM_ANOMALY_TUNING: min_baseline_weeks exceeds baseline_weeks")
    return config
