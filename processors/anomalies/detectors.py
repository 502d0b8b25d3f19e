"""The detectors: bucketed history in, alerts out. Pure functions, no I/O, no clock.

Guarantees every detector keeps:
- Deterministic ids (schemas.alerts.alert_id of rule, window start and key): judging the same
  window again gives the same alert, so replays never repeat one.
- One alert per episode: an anomaly lasting several hours alerts for its first hour only (the
  hour before it was not anomalous by the same rule), so the id does not depend on how many
  batches the episode arrived in.
- Noise guard: the seasonal and rate detectors need a minimum volume and a count that is
  improbable (p_value) under a Poisson model of the baseline, not just a ratio.
"""

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from processors.anomalies.config import DetectorConfig, ThresholdRule
from processors.anomalies.observe import EVENT_CURRENCY, HOUR, PAYMENT, ZERO, Counts, Observation
from processors.anomalies.stats import poisson_cdf, poisson_sf
from processors.calendar import day_bounds
from schemas.alerts import Alert, Severity, alert_id
from schemas.money import format_money

WEEK = timedelta(days=7)
Series = tuple[str, str, bool]  # entity, currency, livemode
History = Mapping[Series, Mapping[datetime, Counts]]


def _mode(livemode: bool) -> str:
    return "live" if livemode else "test"


def _at(history: History, series: Series, hour: datetime) -> Counts:
    return history.get(series, {}).get(hour, ZERO)


# -- seasonal revenue: same hour of the week over past weeks ---------------------------------------


@dataclass(frozen=True)
class Verdict:
    kind: str  # revenue_drop | revenue_spike
    observed: Counts
    expected_minor: int
    expected_count: float
    baseline_minor: list[int]
    p: float


def seasonal_verdict(
    history: History, series: Series, first_hour: datetime, hour: datetime, cfg: DetectorConfig
) -> Verdict | None:
    """Is `hour` a revenue drop or spike against the same hour of the past weeks?"""
    weeks = [hour - WEEK * k for k in range(1, cfg.baseline_weeks + 1)]
    weeks = [h for h in weeks if h >= first_hour]
    if len(weeks) < cfg.min_baseline_weeks:
        return None
    baseline = [_at(history, series, h) for h in weeks]
    expected_count = float(statistics.median(c.payments for c in baseline))
    if expected_count < cfg.min_expected_payments:
        return None  # minimum-volume guard: too little traffic to judge
    expected_minor = int(statistics.median(c.payments_minor for c in baseline))
    observed = _at(history, series, hour)
    amounts = [c.payments_minor for c in baseline]
    if observed.payments_minor <= (1 - cfg.drop_ratio) * expected_minor:
        p = poisson_cdf(observed.payments, expected_count)
        if p <= cfg.p_value:
            return Verdict("revenue_drop", observed, expected_minor, expected_count, amounts, p)
    if observed.payments_minor >= cfg.spike_ratio * expected_minor:
        p = poisson_sf(observed.payments, expected_count)
        if p <= cfg.p_value:
            return Verdict("revenue_spike", observed, expected_minor, expected_count, amounts, p)
    return None


def seasonal_alerts(
    hours: Iterable[datetime],
    history: History,
    first_hours: Mapping[Series, datetime],
    cfg: DetectorConfig,
) -> list[Alert]:
    """Revenue drops and spikes per (entity, currency, livemode), one alert per episode.

    Every series with enough history is judged, including ones with no payments in the hour:
    a drop to zero is the drop that matters most."""
    alerts = []
    for series, first in sorted(first_hours.items()):
        if series[1] == EVENT_CURRENCY:
            continue
        for hour in sorted(hours):
            verdict = seasonal_verdict(history, series, first, hour, cfg)
            if verdict is None:
                continue
            before = seasonal_verdict(history, series, first, hour - HOUR, cfg)
            if before is not None and before.kind == verdict.kind:
                continue  # the same episode, already alerted at its first hour
            alerts.append(_seasonal_alert(series, hour, verdict))
    return alerts


def _seasonal_alert(series: Series, hour: datetime, v: Verdict) -> Alert:
    entity, currency, livemode = series
    drop = v.kind == "revenue_drop"
    observed = format_money(v.observed.payments_minor, currency)
    usual = format_money(v.expected_minor, currency)
    return Alert(
        alert_id=alert_id(v.kind, hour, f"{entity}|{currency}|{livemode}"),
        rule=v.kind,
        severity=Severity.CRITICAL if drop else Severity.WARNING,
        entity=entity,
        currency=currency,
        livemode=livemode,
        window_start=hour,
        window_end=hour + HOUR,
        title=(
            f"Revenue {'drop' if drop else 'spike'}: {observed} in the hour from "
            f"{hour:%Y-%m-%d %H:%M} UTC, usually {usual} ({entity}, {_mode(livemode)})"
        ),
        observed=v.observed.payments_minor,
        expected=v.expected_minor,
        unit="minor_units",
        details={
            "payments": v.observed.payments,
            "expected_payments": v.expected_count,
            "baseline_minor": v.baseline_minor,
            "hour_of_week": f"{hour:%a %H:00} UTC",
            "p_value": v.p,
        },
    )


# -- refund, dispute and failed-payment rates ------------------------------------------------------

RATES = {
    # rule: (numerator, denominator, what is counted)
    "refund_rate_spike": (lambda c: c.refunds, lambda c: c.payments, "refunds"),
    "dispute_rate_spike": (lambda c: c.disputes, lambda c: c.payments, "disputes"),
    "failed_payment_rate_spike": (lambda c: c.failed, lambda c: c.payments + c.failed, "failed payments"),
}
RATE_BASELINE = WEEK


def _by_entity(history: History) -> dict[tuple[str, bool], dict[datetime, Counts]]:
    """Rates are per (entity, livemode) across currencies: disputes and failures carry none."""
    merged: dict[tuple[str, bool], dict[datetime, Counts]] = {}
    for (entity, _currency, livemode), hours in history.items():
        target = merged.setdefault((entity, livemode), {})
        for hour, counts in hours.items():
            target[hour] = target.get(hour, ZERO) + counts
    return merged


@dataclass(frozen=True)
class RateVerdict:
    numerator: int
    denominator: int
    expected: float
    base_rate: float
    p: float


def rate_verdict(
    hours: Mapping[datetime, Counts], rule: str, hour: datetime, cfg: DetectorConfig
) -> RateVerdict | None:
    """Is `hour`'s rate a spike against the trailing week's rate?"""
    num_of, den_of, _ = RATES[rule]
    current = hours.get(hour, ZERO)
    numerator = num_of(current)
    if numerator < cfg.rate_min_events:
        return None
    span = int(RATE_BASELINE / HOUR)
    base_num = base_den = 0
    for k in range(1, span + 1):
        counts = hours.get(hour - HOUR * k, ZERO)
        base_num += num_of(counts)
        base_den += den_of(counts)
    if base_den < cfg.rate_min_baseline:
        return None  # not enough history to know the usual rate
    base_rate = max(base_num / base_den, cfg.rate_floor)
    denominator = den_of(current)
    expected = base_rate * max(denominator, base_den / span)
    if numerator < cfg.rate_ratio * expected:
        return None
    p = poisson_sf(numerator, expected)
    return RateVerdict(numerator, denominator, expected, base_rate, p) if p <= cfg.p_value else None


def rate_alerts(
    hours: Iterable[datetime],
    history: History,
    first_hours: Mapping[Series, datetime],
    cfg: DetectorConfig,
) -> list[Alert]:
    """Refund, dispute and failed-payment rate spikes per (entity, livemode), one per episode."""
    firsts: dict[tuple[str, bool], datetime] = {}
    for (entity, _currency, livemode), first in first_hours.items():
        key = (entity, livemode)
        firsts[key] = min(first, firsts.get(key, first))
    alerts = []
    for (entity, livemode), series in sorted(_by_entity(history).items()):
        since = firsts.get((entity, livemode))
        for rule in RATES:
            for hour in sorted(hours):
                if since is None or hour - RATE_BASELINE < since:
                    continue
                verdict = rate_verdict(series, rule, hour, cfg)
                if verdict is None or rate_verdict(series, rule, hour - HOUR, cfg) is not None:
                    continue
                alerts.append(_rate_alert(entity, livemode, rule, hour, verdict))
    return alerts


def _rate_alert(entity: str, livemode: bool, rule: str, hour: datetime, v: RateVerdict) -> Alert:
    what = RATES[rule][2]
    rate = v.numerator / v.denominator if v.denominator else 1.0
    return Alert(
        alert_id=alert_id(rule, hour, f"{entity}|{livemode}"),
        rule=rule,
        severity=Severity.CRITICAL if rule == "dispute_rate_spike" else Severity.WARNING,
        entity=entity,
        currency="",
        livemode=livemode,
        window_start=hour,
        window_end=hour + HOUR,
        title=(
            f"{what.capitalize()} spike: {v.numerator} {what} against {v.denominator} in the hour from "
            f"{hour:%Y-%m-%d %H:%M} UTC ({rate:.1%}), usually {v.base_rate:.1%} ({entity}, {_mode(livemode)})"
        ),
        observed=round(rate * 1_000_000),
        expected=round(v.base_rate * 1_000_000),
        unit="ppm",
        details={
            what.replace(" ", "_"): v.numerator,
            "denominator": v.denominator,
            "expected_count": round(v.expected, 3),
            "p_value": v.p,
        },
    )


# -- duplicate-looking charges ---------------------------------------------------------------------


def _charge_key(obs: Observation) -> tuple[str, bool, str, str, int]:
    return (obs.entity, obs.livemode, obs.customer_id or "", obs.currency, obs.amount_minor)


def duplicate_charge_alerts(
    changed: Iterable[Observation], candidates: Iterable[Observation], cfg: DetectorConfig
) -> list[Alert]:
    """A payment with an earlier payment of the same customer, amount and currency within the window.

    The alert belongs to the later payment (its record id is the key), so it is the same
    whichever of the two arrived first. `candidates` are stored payments near the changed ones.
    """
    payments = {
        o.record_id: o for o in [*candidates, *changed] if o.kind == PAYMENT and o.counted and o.customer_id
    }
    touched = {o.record_id for o in changed}
    groups: dict[tuple[str, bool, str, str, int], list[Observation]] = {}
    for obs in payments.values():
        groups.setdefault(_charge_key(obs), []).append(obs)
    alerts = []
    for group in groups.values():
        group.sort(key=lambda o: (o.occurred_at, o.record_id))
        for i, later in enumerate(group):
            earlier = next(
                (e for e in group[:i] if later.occurred_at - e.occurred_at <= cfg.duplicate_window), None
            )
            if earlier is None or not ({later.record_id, earlier.record_id} & touched):
                continue
            gap = later.occurred_at - earlier.occurred_at
            alerts.append(
                Alert(
                    alert_id=alert_id("duplicate_charge", later.occurred_at, later.record_id),
                    rule="duplicate_charge",
                    severity=Severity.WARNING,
                    entity=later.entity,
                    currency=later.currency,
                    livemode=later.livemode,
                    window_start=earlier.occurred_at,
                    window_end=later.occurred_at,
                    title=(
                        f"Possible duplicate charge: customer {later.customer_id} paid "
                        f"{format_money(later.amount_minor, later.currency)} twice within "
                        f"{int(gap.total_seconds() // 60)} min {int(gap.total_seconds() % 60)} s "
                        f"({later.entity}, {_mode(later.livemode)})"
                    ),
                    observed=later.amount_minor,
                    expected=None,
                    unit="minor_units",
                    details={
                        "customer_id": later.customer_id,
                        "record_id": later.record_id,
                        "earlier_record_id": earlier.record_id,
                        "seconds_apart": int(gap.total_seconds()),
                    },
                )
            )
    return alerts


# -- configured threshold rules --------------------------------------------------------------------


def payment_rule_alerts(changed: Iterable[Observation], rules: Iterable[ThresholdRule]) -> list[Alert]:
    """`payment_above`: one payment larger than the rule's amount."""
    alerts = []
    for rule in rules:
        if rule.type != "payment_above":
            continue
        for obs in changed:
            if not (obs.kind == PAYMENT and obs.counted and obs.amount_minor > rule.amount_minor):
                continue
            if not rule.applies_to(obs.entity, obs.currency, obs.livemode):
                continue
            alerts.append(
                Alert(
                    alert_id=alert_id(f"rule:{rule.name}", obs.occurred_at, obs.record_id),
                    rule=f"rule:{rule.name}",
                    severity=rule.severity,
                    entity=obs.entity,
                    currency=obs.currency,
                    livemode=obs.livemode,
                    window_start=obs.occurred_at,
                    window_end=obs.occurred_at,
                    title=(
                        f"Rule {rule.name}: one payment of {format_money(obs.amount_minor, obs.currency)}, "
                        f"above {format_money(rule.amount_minor, rule.currency)} ({obs.entity}, "
                        f"{_mode(obs.livemode)})"
                    ),
                    observed=obs.amount_minor,
                    expected=rule.amount_minor,
                    unit="minor_units",
                    details={"record_id": obs.record_id, "customer_id": obs.customer_id},
                )
            )
    return alerts


def daily_rule_alerts(
    days: Iterable[date],
    history: History,
    first_hours: Mapping[Series, datetime],
    rules: Iterable[ThresholdRule],
    tz: ZoneInfo,
) -> list[Alert]:
    """`daily_revenue_below`: a complete business-timezone day's gross revenue under the amount.

    Judged for every series that existed before the day began, so a day with no revenue at all
    alerts too. Hourly buckets make the day exact for timezones with whole-hour offsets."""
    alerts = []
    rules = [r for r in rules if r.type == "daily_revenue_below"]
    for day in sorted(days):
        start, end = day_bounds(day, tz)
        for series, first in sorted(first_hours.items()):
            entity, currency, livemode = series
            if first >= start:
                continue
            hours = history.get(series, {})
            gross = sum(c.payments_minor for h, c in hours.items() if start <= h < end)
            for rule in rules:
                if not rule.applies_to(entity, currency, livemode) or gross >= rule.amount_minor:
                    continue
                alerts.append(
                    Alert(
                        alert_id=alert_id(f"rule:{rule.name}", start, f"{entity}|{currency}|{livemode}"),
                        rule=f"rule:{rule.name}",
                        severity=rule.severity,
                        entity=entity,
                        currency=currency,
                        livemode=livemode,
                        window_start=start,
                        window_end=end,
                        title=(
                            f"Rule {rule.name}: revenue on {day.isoformat()} ({tz.key}) was "
                            f"{format_money(gross, currency)}, below {format_money(rule.amount_minor, currency)} "
                            f"({entity}, {_mode(livemode)})"
                        ),
                        observed=gross,
                        expected=rule.amount_minor,
                        unit="minor_units",
                        details={"day": day.isoformat(), "timezone": tz.key},
                    )
                )
    return alerts
