"""The pure anomaly detectors over a generated history: several normal weeks raise nothing, and
each injected anomaly (a revenue drop, a refund spike, a duplicate charge, a payment over a
configured threshold) is alerted exactly once."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from processors.anomalies.config import ConfigError, DetectorConfig, parse_rules, parse_tuning
from processors.anomalies.detectors import (
    daily_rule_alerts,
    duplicate_charge_alerts,
    payment_rule_alerts,
    rate_alerts,
    seasonal_alerts,
)
from processors.anomalies.observe import (
    HOUR,
    Counts,
    Observation,
    apply_versions,
    observations,
)
from processors.anomalies.stats import poisson_cdf, poisson_sf
from schemas.alerts import Alert, alert_id
from tests import anomaly_history as gen

CFG = DetectorConfig()
TZ = ZoneInfo("America/Chicago")


def bucketize(obs: list[Observation]) -> tuple[dict, dict]:
    _, deltas = apply_versions({}, obs)
    history: dict = {}
    firsts: dict = {}
    for key, counts in deltas.items():
        history.setdefault(key.series, {})[key.hour] = counts
    for o in obs:
        series = (o.entity, o.currency, o.livemode)
        firsts[series] = min(o.hour, firsts.get(series, o.hour))
    return history, firsts


def detect_everything(history_events: list, end: datetime) -> list[Alert]:
    obs = [o for d in history_events for o in observations(d)]
    history, firsts = bucketize(obs)
    start = min(firsts.values())
    hours = [start + HOUR * i for i in range(int((end - start) / HOUR))]
    days = sorted({(h.astimezone(TZ)).date() for h in hours})[1:-1]  # complete local days only
    rules = parse_rules(gen.RULES_JSON)
    changed, _ = apply_versions({}, obs)
    return (
        seasonal_alerts(hours, history, firsts, CFG)
        + rate_alerts(hours, history, firsts, CFG)
        + daily_rule_alerts(days, history, firsts, rules, TZ)
        + payment_rule_alerts(changed, rules)
        + duplicate_charge_alerts(changed, [], CFG)
    )


@pytest.fixture(scope="module")
def history() -> gen.History:
    return gen.generate()


def test_injected_anomalies_alert_exactly_once_and_normal_weeks_none(history: gen.History) -> None:
    alerts = detect_everything(history.events, history.end)
    found = sorted((a.rule, a.window_start) for a in alerts)
    assert found == sorted(gen.EXPECTED_RULES), [a.title for a in alerts]
    assert len({a.alert_id for a in alerts}) == len(alerts)


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_normal_weeks_raise_nothing(seed: int) -> None:
    normal = gen.generate(seed, inject=False)
    assert detect_everything(normal.events, normal.end) == []


def test_replay_and_reordering_change_nothing(history: gen.History) -> None:
    obs = [o for d in history.events for o in observations(d)]
    _, once = apply_versions({}, obs)
    stored = {o.record_id: o for o in obs}
    changed, deltas = apply_versions(stored, list(reversed(obs)) + obs)
    assert changed == [] and deltas == {}
    _, shuffled = apply_versions({}, obs[::2] + obs[1::2] + obs[:100])
    assert shuffled == once


def test_newer_version_moves_the_bucket_exactly() -> None:
    t = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    pending = Observation("stripe:refund:re_1", 10, "refund", "e", "usd", True, t, 500, True)
    failed = Observation("stripe:refund:re_1", 20, "refund", "e", "usd", True, t, 500, False)
    changed, deltas = apply_versions({pending.record_id: pending}, [failed])
    assert changed == [failed]
    assert list(deltas.values()) == [Counts(refunds=-1, refunds_minor=-500)]
    assert apply_versions({failed.record_id: failed}, [pending]) == ([], {})  # older never wins


def _payments_hour(history: dict, series: tuple, hour: datetime, count: int, each: int) -> None:
    history.setdefault(series, {})[hour] = Counts(payments=count, payments_minor=count * each)


def test_seasonal_volume_guard_and_min_weeks() -> None:
    series = ("e", "usd", True)
    hour = datetime(2024, 6, 5, 15, tzinfo=UTC)
    history: dict = {}
    for k in range(1, 5):
        _payments_hour(history, series, hour - timedelta(weeks=k), 5, 1000)  # 5 a week: below the guard
    assert seasonal_alerts([hour], history, {series: hour - timedelta(weeks=4)}, CFG) == []
    for k in range(1, 5):
        _payments_hour(history, series, hour - timedelta(weeks=k), 30, 1000)
    (alert,) = seasonal_alerts([hour], history, {series: hour - timedelta(weeks=4)}, CFG)
    assert alert.rule == "revenue_drop" and alert.observed == 0 and alert.expected == 30_000
    assert alert.alert_id == alert_id("revenue_drop", hour, "e|usd|True")
    # Only two weeks of history: no verdict yet.
    assert seasonal_alerts([hour], history, {series: hour - timedelta(weeks=2)}, CFG) == []


def test_seasonal_spike_and_one_alert_per_episode() -> None:
    series = ("e", "eur", True)
    first = datetime(2024, 6, 5, 12, tzinfo=UTC)
    history: dict = {}
    hours = [first + HOUR * k for k in range(3)]
    for hour in [first - HOUR, *hours]:
        for k in range(1, 5):
            _payments_hour(history, series, hour - timedelta(weeks=k), 20, 1000)
    for hour in hours:
        _payments_hour(history, series, hour, 90, 1000)
    _payments_hour(history, series, first - HOUR, 20, 1000)
    alerts = seasonal_alerts(hours, history, {series: first - timedelta(weeks=5)}, CFG)
    assert [(a.rule, a.window_start) for a in alerts] == [("revenue_spike", first)]


def test_rate_spikes_for_disputes_and_failures() -> None:
    hour = datetime(2024, 6, 5, 12, tzinfo=UTC)
    history: dict = {("e", "usd", True): {}, ("e", "", True): {}}
    for k in range(1, 24 * 7 + 1):
        history[("e", "usd", True)][hour - HOUR * k] = Counts(payments=20, payments_minor=20_000)
        history[("e", "", True)][hour - HOUR * k] = Counts(failed=1 if k % 10 == 0 else 0)
    history[("e", "usd", True)][hour] = Counts(payments=20, payments_minor=20_000)
    history[("e", "", True)][hour] = Counts(disputes=6, failed=12)
    firsts = {("e", "usd", True): hour - timedelta(days=8), ("e", "", True): hour - timedelta(days=8)}
    alerts = rate_alerts([hour], history, firsts, CFG)
    assert sorted(a.rule for a in alerts) == ["dispute_rate_spike", "failed_payment_rate_spike"]
    failed = next(a for a in alerts if a.rule == "failed_payment_rate_spike")
    assert failed.unit == "ppm" and failed.observed == round(12 / 32 * 1_000_000)
    # Four disputes are below rate_min_events: ordinary.
    history[("e", "", True)][hour] = Counts(disputes=4)
    assert rate_alerts([hour], history, firsts, CFG) == []


def test_duplicate_charges_are_order_independent() -> None:
    t = datetime(2024, 6, 5, 12, tzinfo=UTC)

    def pay(i: str, at: datetime, amount: int = 4900, customer: str = "cus_1") -> Observation:
        return Observation(
            f"stripe:payment:pi_{i}", 1, "payment", "e", "usd", True, at, amount, True, customer
        )

    a, b = pay("a", t), pay("b", t + timedelta(minutes=4))
    far, other = pay("c", t + timedelta(minutes=30)), pay("d", t + timedelta(minutes=1), amount=900)
    first = duplicate_charge_alerts([a, b, far, other], [], CFG)
    later_arrival = duplicate_charge_alerts([a], [b], CFG)  # b was stored first, a arrives late
    assert [x.alert_id for x in first] == [x.alert_id for x in later_arrival]
    assert [x.details["record_id"] for x in first] == ["stripe:payment:pi_b"]
    assert duplicate_charge_alerts([pay("x", t, customer="cus_2")], [a], CFG) == []


def test_daily_rule_uses_business_days_and_needs_history() -> None:
    rules = parse_rules(
        '[{"name": "slow-day", "type": "daily_revenue_below", "currency": "usd", "amount_minor": 10000}]'
    )
    day = datetime(2024, 3, 10).date()  # DST starts in Chicago: a 23-hour day
    start = datetime(2024, 3, 10, 6, tzinfo=UTC)  # local midnight (CST, UTC-6)
    series = ("e", "usd", True)
    history = {series: {start + HOUR * k: Counts(payments=1, payments_minor=400) for k in range(23)}}
    (alert,) = daily_rule_alerts([day], history, {series: start - timedelta(days=3)}, rules, TZ)
    assert alert.observed == 23 * 400 and alert.window_end - alert.window_start == timedelta(hours=23)
    assert daily_rule_alerts([day], history, {series: start}, rules, TZ) == []  # new series: no verdict
    history[series][start + HOUR * 5] = Counts(payments=2, payments_minor=1400)
    assert daily_rule_alerts([day], history, {series: start - timedelta(days=3)}, rules, TZ) == []


def test_payment_rule_respects_currency_entity_and_mode() -> None:
    rules = parse_rules(
        '[{"name": "big", "type": "payment_above", "currency": "usd", "amount_minor": 1000, "entity": "shop"}]'
    )
    t = datetime(2024, 6, 5, 12, tzinfo=UTC)
    hit = Observation("stripe:payment:pi_1", 1, "payment", "shop", "usd", True, t, 1001, True)
    misses = [
        Observation("stripe:payment:pi_2", 1, "payment", "shop", "usd", True, t, 1000, True),
        Observation("stripe:payment:pi_3", 1, "payment", "other", "usd", True, t, 5000, True),
        Observation("stripe:payment:pi_4", 1, "payment", "shop", "eur", True, t, 5000, True),
        Observation("stripe:payment:pi_5", 1, "payment", "shop", "usd", False, t, 5000, True),
    ]
    assert [a.details["record_id"] for a in payment_rule_alerts([hit, *misses], rules)] == [hit.record_id]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "REVSTREAM_ALERT_RULES"),
        ('[{"name": "x", "type": "nope", "currency": "usd", "amount_minor": 1}]', "type"),
        ('[{"name": "x", "type": "payment_above", "currency": "USD", "amount_minor": 1}]', "currency"),
        ('[{"name": "x", "type": "payment_above", "currency": "usd", "amount_minor": -1}]', "amount_minor"),
        (
            '[{"name": "x", "type": "payment_above", "currency": "usd", "amount_minor": 1},'
            ' {"name": "x", "type": "payment_above", "currency": "usd", "amount_minor": 2}]',
            "unique",
        ),
    ],
)
def test_bad_rules_are_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_rules(text)


def test_tuning_overrides_and_refuses_unknown_fields() -> None:
    assert parse_tuning('{"baseline_weeks": 6, "p_value": 0.001}').baseline_weeks == 6
    with pytest.raises(ConfigError, match="REVSTREAM_ANOMALY_TUNING"):
        parse_tuning('{"baseline_wekes": 6}')
    with pytest.raises(ConfigError, match="min_baseline_weeks"):
        parse_tuning('{"baseline_weeks": 2}')


def test_poisson_tails() -> None:
    assert poisson_cdf(0, 2.0) == pytest.approx(0.1353352832)
    assert poisson_sf(1, 2.0) == pytest.approx(1 - 0.1353352832)
    assert poisson_cdf(5, 5.0) + poisson_sf(6, 5.0) == pytest.approx(1.0)
    assert 0 < poisson_sf(60, 5.0) < 1e-30
