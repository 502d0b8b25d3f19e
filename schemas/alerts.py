"""Alerts and summaries: what the anomaly processor and the summary scheduler produce.

An alert's id is a hash of its rule, its window and its key (see `alert_id`), so the same
anomaly found again (a replay, a re-delivered batch, a second replica) is the same alert.
"""

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


# Which lifecycle moves are allowed. Resolved and dismissed are final.
TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.OPEN: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.DISMISSED}),
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.RESOLVED, AlertStatus.DISMISSED}),
    AlertStatus.RESOLVED: frozenset(),
    AlertStatus.DISMISSED: frozenset(),
}


def alert_id(rule: str, window_start: datetime, key: str) -> str:
    """Deterministic id: the same rule, window and key always give the same alert."""
    digest = hashlib.sha256(f"{rule}|{window_start.isoformat()}|{key}".encode()).hexdigest()
    return f"alert_{digest[:24]}"


class Alert(BaseModel):
    """One anomaly or threshold breach, found in event time."""

    model_config = ConfigDict(frozen=True)

    alert_id: str = Field(description="alert_id(rule, window_start, key): replays find the same id.")
    rule: str = Field(description="Detector or configured rule, e.g. revenue_drop, rule:big-payment.")
    severity: Severity
    entity: str
    currency: str = Field(description="Lowercase ISO code, or '' for rules across currencies.")
    livemode: bool
    window_start: datetime = Field(description="Start of the event-time window the alert is about (UTC).")
    window_end: datetime
    title: str = Field(description="One line for humans.")
    observed: int = Field(description="Observed value: minor units for money, a count, or a rate in ppm.")
    expected: int | None = Field(default=None, description="Baseline or threshold in the same unit.")
    unit: str = Field(description="minor_units | count | ppm")
    details: dict[str, Any] = Field(default_factory=dict, description="Rule-specific evidence.")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Alert":
        return cls.model_validate_json(data)


class SummaryKind(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class SummaryPeriod(BaseModel):
    """A business-timezone day or Monday-to-Sunday week, with its UTC bounds."""

    model_config = ConfigDict(frozen=True)

    kind: SummaryKind
    label: str = Field(description="2024-06-01 for a day, 2024-W22 for a week (ISO).")
    start: datetime = Field(description="Local midnight at the start, as UTC.")
    end: datetime = Field(description="Local midnight after the end, as UTC (exclusive).")
    timezone: str
