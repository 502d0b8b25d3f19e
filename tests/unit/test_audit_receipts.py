"""The audit chain's pure parts: canonical encoding, hashes, Merkle roots, change detection and the
verifier's receipt walk (fed rows in memory; the database side is tests/integration/test_audit_chain.py)."""

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sinks.postgres.audit import _Change, _Row, _source_event, diff_states
from sinks.postgres.audit_verify import Report, _Checker
from sinks.postgres.receipts import (
    ANCHOR_EVERY,
    GENESIS_HASH,
    Receipt,
    anchor_ranges,
    canonical_bytes,
    merkle_root,
    receipt_hash,
    tree_hash,
)

RECORDED = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)


def receipt(seq: int = 1, prev_hash: str = GENESIS_HASH, **changes: Any) -> Receipt:
    base = Receipt(
        seq=seq,
        record_type="ledger",
        record_id=f"stripe:payment:pi_{seq}",
        version=1_700_000_000_123,
        change="created",
        kind="payment",
        entity="default",
        livemode=True,
        amount_minor=999,
        currency="eur",
        counted=True,
        status="succeeded",
        refunded_minor=None,
        source_event_id=f"evt_{seq}",
        recorded_at=RECORDED,
        prev_hash=prev_hash,
    )
    return dataclasses.replace(base, **changes)


def test_canonical_encoding_is_sorted_compact_json() -> None:
    expected = (
        b'{"amount_minor":999,"change":"created","counted":true,"currency":"eur","entity":"default",'
        b'"kind":"payment","livemode":true,"prev_hash":"' + b"0" * 64 + b'",'
        b'"record_id":"stripe:payment:pi_1","record_type":"ledger",'
        b'"recorded_at":"2025-01-31T12:00:00.123456Z","refunded_minor":null,"seq":1,"source_event_id":"evt_1",'
        b'"status":"succeeded","version":1700000000123}'
    )
    assert canonical_bytes(receipt()) == expected
    assert receipt_hash(receipt()) == hashlib.sha256(expected).hexdigest()


def test_the_same_instant_in_another_zone_encodes_the_same() -> None:
    elsewhere = RECORDED.astimezone(timezone(timedelta(hours=-5)))
    assert canonical_bytes(receipt(recorded_at=elsewhere)) == canonical_bytes(receipt())
    with pytest.raises(ValueError):
        canonical_bytes(receipt(recorded_at=datetime(2025, 1, 1)))


def test_non_ascii_is_escaped() -> None:
    assert b'"entity":"caf\\u00e9"' in canonical_bytes(receipt(entity="café"))


@pytest.mark.parametrize(
    "field_name, value",
    [("amount_minor", 1000), ("currency", "usd"), ("counted", False), ("status", "refunded"), ("seq", 2)],
)
def test_every_field_is_covered_by_the_hash(field_name: str, value: Any) -> None:
    assert receipt_hash(receipt(**{field_name: value})) != receipt_hash(receipt())


# RFC 6962 / Certificate Transparency reference leaves and roots for tree sizes 1..8.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_merkle_tree_matches_the_rfc6962_reference_roots(size: int) -> None:
    assert tree_hash([bytes.fromhex(leaf) for leaf in CT_LEAVES[:size]]).hex() == CT_ROOTS[size - 1]


def test_merkle_root_depends_on_every_leaf_and_its_position() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(ANCHOR_EVERY)]
    root = merkle_root(hashes)
    assert merkle_root(hashes[:-1] + [GENESIS_HASH]) != root
    assert merkle_root([hashes[1], hashes[0], *hashes[2:]]) != root
    with pytest.raises(ValueError):
        merkle_root([])


@pytest.mark.parametrize(
    "before, after, expected",
    [
        (0, 255, []),
        (0, 256, [(1, 256)]),
        (255, 256, [(1, 256)]),
        (256, 511, []),
        (200, 800, [(1, 256), (257, 512), (513, 768)]),
    ],
)
def test_anchor_ranges_are_the_blocks_completed(before: int, after: int, expected: list[Any]) -> None:
    assert anchor_ranges(before, after) == expected


def ledger_row(
    record_id: str, amount: int = 500, status: str = "succeeded", version: int = 1, **kw: Any
) -> _Row:
    fields: dict[str, Any] = dict(
        record_type="ledger",
        record_id=record_id,
        payment_key="pi_1",
        kind="refund",
        entity="default",
        livemode=True,
        amount_minor=amount,
        currency="usd",
        counted=True,
        status=status,
        refunded_minor=None,
        version=version,
        source_event_id=f"evt_v{version}",
    )
    return _Row(**(fields | kw))


def order_row(status: str, refunded: int, version: int = 1) -> _Row:
    return _Row(
        "order", "stripe:order:cs_1", "pi_1", "order", "default", True, 1000, "usd", None, status,
        refunded, version, "evt_checkout",
    )  # fmt: skip


def test_only_new_rows_and_money_changes_are_receipted() -> None:
    before = {
        "ledger:a": ledger_row("a", version=1),
        "ledger:b": ledger_row("b", version=1),
        "order:o": order_row("paid", 0),
    }
    after = {
        "ledger:a": ledger_row("a", version=5),  # newer version, same money: no receipt
        "ledger:b": ledger_row("b", status="canceled", version=6, counted=False),
        "ledger:c": ledger_row("c", amount=200, version=7),
        "order:o": order_row("partially_refunded", 200),
    }
    changes = diff_states(before, after)
    assert [(c.after.record_id, c.before is None) for c in changes] == [
        ("b", False),
        ("c", True),
        ("stripe:order:cs_1", False),
    ]
    ledger_changes = [c for c in changes if c.after.record_type == "ledger"]
    # The order did not move itself: the newest ledger change of its payment caused it.
    assert _source_event(changes[2], ledger_changes) == "evt_v7"
    assert diff_states(after, after) == []


def test_a_new_order_names_its_own_event() -> None:
    change = _Change(None, order_row("refunded", 1000))
    assert _source_event(change, [_Change(None, ledger_row("c", version=9))]) == "evt_checkout"


def chain(n: int) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        r = receipt(seq, prev)
        prev = receipt_hash(r)
        rows.append((*dataclasses.astuple(r), prev))
    return rows


def walk(rows: list[tuple[Any, ...]], anchors: dict[int, tuple[int, str]]) -> Report:
    report = Report()
    checker = _Checker(dict(anchors), report, max_problems=20)
    for row in rows:
        checker.receipt(row)
    return report


def anchors_of(rows: list[tuple[Any, ...]]) -> dict[int, tuple[int, str]]:
    return {
        first: (
            first + ANCHOR_EVERY - 1,
            merkle_root([r[-1] for r in rows[first - 1 : first - 1 + ANCHOR_EVERY]]),
        )
        for first in range(1, len(rows) - ANCHOR_EVERY + 2, ANCHOR_EVERY)
    }


def test_an_intact_chain_verifies() -> None:
    rows = chain(600)
    report = walk(rows, anchors_of(rows))
    assert report.ok and report.receipts == 600 and report.anchors == 2


def test_an_edited_receipt_is_named_first() -> None:
    rows = chain(600)
    anchors = anchors_of(rows)
    tampered = list(rows[299])
    tampered[8] += 1  # amount_minor
    rows[299] = tuple(tampered)
    report = walk(rows, anchors)
    assert report.problems[0].seq == 300
    assert report.problems[0].record_id == "stripe:payment:pi_300"
    assert "hash mismatch" in report.problems[0].what
    assert len(report.problems) == 1  # its stored hash still links and still fits the anchor


def test_an_edited_receipt_with_a_recomputed_hash_breaks_the_next_link_and_the_anchor() -> None:
    rows = chain(600)
    anchors = anchors_of(rows)
    r = dataclasses.replace(receipt(300, rows[298][-1]), amount_minor=1)
    rows[299] = (*dataclasses.astuple(r), receipt_hash(r))
    report = walk(rows, anchors)
    assert [p.seq for p in report.problems] == [301, 512]
    assert "chain link broken" in report.problems[0].what
    assert "Merkle root" in report.problems[1].what


def test_a_deleted_receipt_is_a_gap_and_a_missing_anchor_is_named() -> None:
    rows = chain(300)
    report = walk(rows[:99] + rows[100:], anchors_of(rows))
    assert report.problems[0].seq == 101
    assert "#100 missing" in report.problems[0].what
    report = walk(rows, {})
    assert [p.seq for p in report.problems] == [256]
    assert "anchor for receipts #1..#256 is missing" in report.problems[0].what
