"""The audit chain against real PostgreSQL, through the real store and the real CLI commands:
receipts only for real changes, in the same transaction, gapless under concurrent writers, anchored
every 256; `revstream audit verify` and `revstream trace` as an operator runs them."""

import asyncio
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope
from schemas.revenue import DerivedEvent
from sinks.postgres.receipts import ANCHOR_EVERY, merkle_root
from sinks.postgres.store import PostgresStore
from tests.conftest import REPO, create_database
from tests.services import ServiceEndpoints
from tests.stripe_history import Generator, raw_envelope

pytestmark = pytest.mark.integration


@pytest.fixture
def database(services: ServiceEndpoints) -> Iterator[str]:
    from sinks.postgres.migrations import apply_migrations

    url = create_database(services.postgres_url, f"revstream_audit_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    yield url


def derived(event: dict[str, Any]) -> DerivedEvent:
    _, value = raw_envelope(json.dumps(event).encode())
    return derive(RawEnvelope.from_bytes(value))


async def write(url: str, *batches: list[DerivedEvent]) -> None:
    """Each batch is one flush (one transaction); batches run concurrently on their own stores."""
    async with AsyncConnectionPool(url, min_size=1, max_size=len(batches), open=False) as pool:

        async def flush(batch: list[DerivedEvent]) -> None:
            store = PostgresStore(pool)
            for item in batch:
                store.add(item)
            await store.flush()

        await asyncio.gather(*(flush(b) for b in batches))


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(query, params).fetchall())


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def receipts(url: str) -> list[tuple[Any, ...]]:
    return sql(
        url,
        "SELECT seq, record_id, change, kind, amount_minor, status, refunded_minor, source_event_id "
        "FROM audit_receipts ORDER BY seq",
    )


def test_receipts_record_real_changes_once_and_verify_names_a_tampered_one(database: str) -> None:
    gen = Generator(random.Random(1))
    payment = derived(gen.payment_event(1, 1000, "usd", True, 1_700_000_000))
    checkout = derived(gen.checkout_event(1, 1000, "usd", True, 1_700_000_001, "cus_audit"))
    first = [("re_gen_1_a", 300, 1_700_000_100)]
    refund_a = derived(gen.refund_event("evt_gen_r1_a", 1, 1000, first, "usd", True, 1_700_000_100))
    both = [*first, ("re_gen_1_b", 200, 1_700_000_200)]
    refund_b = derived(gen.refund_event("evt_gen_r1_b", 1, 1000, both, "usd", True, 1_700_000_200))

    asyncio.run(write(database, [payment]))
    # The checkout moves the payment row to a newer version with the same money: only the order is new.
    asyncio.run(write(database, [checkout]))
    assert receipts(database) == [
        (1, "stripe:payment:pi_gen_1", "created", "payment", 1000, "succeeded", None, "evt_gen_p1"),
        (2, "stripe:order:cs_gen_1", "created", "order", 1000, "paid", 0, "evt_gen_c1"),
    ]
    asyncio.run(write(database, [checkout, payment]))  # a re-delivered batch: nothing changed
    assert len(receipts(database)) == 2

    asyncio.run(write(database, [refund_b]))  # the newer refund event arrives first and lists both
    assert receipts(database)[2:] == [
        (3, "stripe:refund:re_gen_1_a", "created", "refund", 300, "succeeded", None, "evt_gen_r1_b"),
        (4, "stripe:refund:re_gen_1_b", "created", "refund", 200, "succeeded", None, "evt_gen_r1_b"),
        (5, "stripe:order:cs_gen_1", "changed", "order", 1000, "partially_refunded", 500, "evt_gen_r1_b"),
    ]
    asyncio.run(write(database, [refund_a, refund_b, payment]))  # stale and duplicate: no receipt
    assert len(receipts(database)) == 5
    assert sql(database, "SELECT last_seq FROM audit_chain_head") == [(5,)]

    result = cli(database, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit verify: OK: 5 receipts" in result.stdout

    # trace: one buyer's path from any of its ids
    text = cli(database, "trace", "pi_gen_1")
    assert text.returncode == 0, text.stderr
    for expected in (
        "payment pi_gen_1",
        "evt_gen_c1  checkout.session.completed  processed",
        "stripe:order:cs_gen_1  partially_refunded  1000 usd  refunded 500  customer cus_audit",
        "stripe:refund:re_gen_1_b  refund  200 usd  succeeded  counted",
        "audit receipts (5):",
        "#5",
    ):
        assert expected in text.stdout, text.stdout
    for ident in ("cs_gen_1", "re_gen_1_a", "cus_audit", "evt_gen_r1_b", "evt_gen_p1"):
        as_json = cli(database, "trace", ident, "--json")
        assert as_json.returncode == 0, as_json.stderr
        (found,) = json.loads(as_json.stdout)["payments"]
        assert found["payment_key"] == "pi_gen_1"
        assert [r["seq"] for r in found["receipts"]] == [1, 2, 3, 4, 5]
        assert {e["provider_event_id"] for e in found["events"]} == {
            "evt_gen_p1",
            "evt_gen_c1",
            "evt_gen_r1_b",
        }
    superseded = cli(database, "trace", "evt_gen_r1_a")  # its refund row now comes from evt_gen_r1_b
    assert superseded.returncode == 0 and "evt_gen_r1_a  charge.refunded  processed" in superseded.stdout
    missing = cli(database, "trace", "pi_nobody")
    assert missing.returncode == 1 and "no webhook event" in missing.stdout

    # The pipeline's own writes cannot change a receipt...
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        sql(database, "UPDATE audit_receipts SET amount_minor = 1 WHERE seq = 3")
    # ...and when someone who can switch the guard off does, verify names exactly that receipt.
    with psycopg.connect(database) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_receipts SET amount_minor = 30 WHERE seq = 3")
    result = cli(database, "audit", "verify")
    assert result.returncode == 1
    assert result.stdout.startswith(
        "audit verify: FAILED at receipt #3, record stripe:refund:re_gen_1_a: hash mismatch"
    ), result.stdout


def test_concurrent_writers_get_a_gapless_chain_anchored_every_256(database: str) -> None:
    gen = Generator(random.Random(2))
    payments = [derived(gen.payment_event(i, 100 + i, "eur", True, 1_700_000_000 + i)) for i in range(600)]
    # Three concurrent transactions, then a fourth: sequence numbers come from one writer at a time.
    asyncio.run(write(database, payments[:200], payments[200:400], payments[400:550]))
    asyncio.run(write(database, payments[550:]))
    seqs = [seq for (seq,) in sql(database, "SELECT seq FROM audit_receipts ORDER BY seq")]
    assert seqs == list(range(1, 601))
    anchors = sql(database, "SELECT first_seq, last_seq, root FROM audit_anchors ORDER BY first_seq")
    assert [(a, b) for a, b, _ in anchors] == [(1, ANCHOR_EVERY), (ANCHOR_EVERY + 1, 2 * ANCHOR_EVERY)]
    for first, last, root in anchors:
        hashes = [
            h
            for (h,) in sql(
                database,
                "SELECT hash FROM audit_receipts WHERE seq BETWEEN %s AND %s ORDER BY seq",
                first,
                last,
            )
        ]
        assert merkle_root(hashes) == root
    result = cli(database, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "600 receipts" in result.stdout and "2 Merkle anchors" in result.stdout

    # A receipt removed from the middle: the gap is named, and so is the block's broken anchor.
    with psycopg.connect(database) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_receipts WHERE seq = 300")
    result = cli(database, "audit", "verify")
    assert result.returncode == 1
    assert result.stdout.startswith("audit verify: FAILED at receipt #301"), result.stdout
    assert "#300 missing" in result.stdout
