"""Manual entries and CSV backfill on the real pipeline: they reach exactly the totals the same
money reaches through Stripe webhooks, through the same processors; idempotency holds across
re-sends and re-imports; webhook event records can be listed and replayed without double counting."""

import json
from pathlib import Path

import pytest

from tests.conftest import Pipeline
from tests.stripe_fixtures import charge_refunded, payment_succeeded

pytestmark = pytest.mark.integration

# The same money three ways: a USD payment of 123.45 refunded 23.45, and a JPY payment of 5000.
ONE_SET = {
    "usd": {"gross": 12345, "refunds": 2345, "net": 10000},
    "jpy": {"gross": 5000, "refunds": 0, "net": 5000},
}


def times(n: int) -> dict[str, dict[str, int]]:
    return {cur: {k: v * n for k, v in t.items()} for cur, t in ONE_SET.items()}


CSV = """id,kind,amount,currency,occurred_at,entity,customer,reference,product,refund_of
csv-po-1,payment,123.45,USD,2026-10-01T09:00:00Z,acme-eu,cus_csv,PO-1,support-plan,
csv-po-2,payment,5000,JPY,2026-10-02,acme-eu,,PO-2,,
csv-bad-1,payment,12.345,USD,2026-10-02,acme-eu,,,,
csv-po-1-r,refund,23.45,usd,2026-10-03T00:00:00+02:00,acme-eu,,,,csv-po-1
,payment,1.00,usd,2026-10-03,acme-eu,,,,
csv-bad-2,payment,1.00,usd,yesterday,acme-eu,,,,
"""


def test_stripe_manual_and_csv_reach_the_same_totals(pipeline: Pipeline, tmp_path: Path) -> None:
    # 1. Stripe webhooks.
    for event in (
        payment_succeeded("parity1", 12345, "usd"),
        payment_succeeded("parity2", 5000, "jpy"),
        charge_refunded("parity1", 12345, 2345, "usd"),
    ):
        pipeline.deliver(json.dumps(event).encode())
    pipeline.wait_for_totals(times(1), livemode=True)

    # 2. The same money as manual entries; each re-sent once (same key, same body).
    entries = {
        "po-1": {
            "kind": "payment",
            "amount": "123.45",
            "currency": "USD",
            "occurred_at": "2026-10-01T09:00:00Z",
            "customer": "cus_manual",
            "reference": "PO-1",
        },
        "po-2": {"kind": "payment", "amount": 5000, "currency": "jpy", "occurred_at": "2026-10-02"},
        "po-1-refund": {
            "kind": "refund",
            "amount": "23.45",
            "currency": "usd",
            "occurred_at": "2026-10-03",
            "refund_of": "po-1",
        },
    }
    for key, entry in entries.items():
        first = pipeline.post_manual(entry, key)
        again = pipeline.post_manual(entry, key)
        assert first.status_code == again.status_code == 200, first.text
        assert first.json() == again.json() == {"received": True, "id": f"default:{key}"}
        assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
    conflict = pipeline.post_manual({**entries["po-1"], "amount": "999.00"}, "po-1")
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"
    pipeline.wait_for_totals(times(2), livemode=True)
    assert pipeline.sql(
        "SELECT status, refunded_minor FROM orders WHERE order_id = 'manual:order:default:po-1'"
    ) == [("partially_refunded", 2345)]

    # 3. The same money from a CSV file with bad rows: good rows imported, bad ones reported by line.
    path = tmp_path / "offline.csv"
    path.write_text(CSV)
    first = pipeline.cli("backfill", "csv", str(path))
    assert first.returncode == 1, first.stderr
    assert (
        "line 4: amount" in first.stdout
        and "line 6: id" in first.stdout
        and "line 7: occurred_at" in first.stdout
    )
    assert "imported 3, already imported 0, invalid 3, refused 0" in first.stdout
    assert "rows sent" in first.stderr  # progress
    pipeline.wait_for_totals(times(3), livemode=True)

    # Running the same file again changes nothing.
    again = pipeline.cli("backfill", "csv", str(path))
    assert "imported 0, already imported 3, invalid 3, refused 0" in again.stdout
    assert pipeline.sql("SELECT count(*) FROM revenue_ledger WHERE entity = 'acme-eu'") == [(3,)]
    pipeline.wait_for_totals(times(3), livemode=True)

    # The product named on the CSV row reaches the ledger and the trends by product.
    assert pipeline.sql(
        "SELECT product FROM revenue_ledger WHERE record_id = 'manual:payment:acme-eu:csv-po-1'"
    ) == [("support-plan",)]
    trends = pipeline.http.get(
        "/api/v1/revenue/trends",
        params={
            "interval": "month",
            "from": "2026-10-01T00:00:00Z",
            "to": "2026-11-01T00:00:00Z",
            "group_by": "product",
        },
    )
    assert trends.status_code == 200, trends.text
    assert "support-plan" in trends.text


def test_events_are_listed_and_a_replay_derives_again_without_double_counting(pipeline: Pipeline) -> None:
    pipeline.deliver(json.dumps(payment_succeeded("replay1", 4200, "eur")).encode())
    broken = payment_succeeded("replay2", 100, "eur")
    broken["data"]["object"]["amount_received"] = "1.00"  # authentic but underivable: a float-ish string
    broken["data"]["object"]["amount"] = "1.00"
    pipeline.deliver(json.dumps(broken).encode())
    expected = {"eur": {"gross": 4200, "refunds": 0, "net": 4200}}
    pipeline.wait_for_totals(expected, livemode=True)

    def states() -> dict[str, tuple[str, int]]:
        rows = pipeline.sql(
            "SELECT provider_event_id, state, attempts FROM webhook_events WHERE raw_envelope IS NOT NULL"
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    wait_for(
        lambda: states() == {"evt_replay1_paid": ("processed", 1), "evt_replay2_paid": ("failed", 1)}, states
    )

    listing = pipeline.cli("events", "list", "--state", "failed")
    assert listing.returncode == 0, listing.stderr
    assert "evt_replay2_paid" in listing.stdout and "evt_replay1_paid" not in listing.stdout
    shown = pipeline.cli("events", "show", "evt_replay2_paid")
    assert json.loads(shown.stdout)["error"]

    for event_id in ("evt_replay1_paid", "evt_replay2_paid"):
        replay = pipeline.cli("events", "replay", event_id)
        assert replay.returncode == 0 and "attempt 1" in replay.stdout, replay.stdout + replay.stderr
    wait_for(
        lambda: states() == {"evt_replay1_paid": ("processed", 2), "evt_replay2_paid": ("failed", 2)}, states
    )
    pipeline.wait_for_totals(expected, livemode=True)  # derived again, counted once
    assert pipeline.cli("events", "replay", "evt_nope").returncode == 2


def wait_for(predicate, describe, timeout_s: float = 60) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"condition not reached; last: {describe()}")
