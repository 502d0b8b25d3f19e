"""Crash recovery at volume: 20,000 generated Stripe events plus 10% duplicates, shuffled, go
through the real pipeline (processor, sink-postgres, and the web process hosting ingest, the query
API and the ClickHouse sink) while those services are SIGKILLed at random points and restarted.

Most deliveries are published straight onto the raw topic as the envelopes ingest would publish for
them (20,000 signed HTTP posts would take minutes); a few hundred go through the real webhook
endpoint with Stripe signatures and Stripe-like retries, so ingest is crashed mid-delivery too.

The end state must equal sums computed independently from the generated history: nothing lost,
nothing counted twice, in PostgreSQL (ledger, orders, event log) and in ClickHouse (via the
totals API). Then the audit chain: one receipt per ledger record (each generated record's money
never changes), derived events re-delivered to the sinks write no receipt, `revstream audit verify`
passes, and after one receipt row is edited with SQL it names exactly that receipt.
"""

import asyncio
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope
from tests.conftest import REPO, TEST_SECRET, Pipeline
from tests.stripe_fixtures import stripe_signature
from tests.stripe_history import History, generate_history, raw_envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20240601
MIN_EVENTS = 20_000
DUPLICATE_SHARE = 0.1
HTTP_DELIVERIES = 300  # of the shuffled deliveries, posted to the webhook endpoint instead
PUBLISH_RATE_PER_S = 1_500  # spreads the raw topic's input over the crash schedule
REPLAYED = 1_000
DEADLINE_S = 240


@dataclass
class Publisher:
    """Publishes (key, envelope) pairs onto the raw topic at a steady rate from its own thread,
    with the same producer settings as ingest (acks=all, idempotent)."""

    bootstrap: str
    topic: str
    messages: list[tuple[bytes, bytes]]
    rate_per_s: float
    done: int = 0
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=20
        )
        await producer.start()
        try:
            started = time.monotonic()
            for first in range(0, len(self.messages), 250):
                chunk = self.messages[first : first + 250]
                sent = [await producer.send(self.topic, value=value, key=key) for key, value in chunk]
                await asyncio.gather(*sent)
                self.done += len(chunk)
                await asyncio.sleep(max(0.0, started + self.done / self.rate_per_s - time.monotonic()))
        finally:
            await producer.stop()

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.finished.set()


@dataclass
class Poster:
    """Posts signed deliveries to the webhook in order, retrying like Stripe (connection errors
    and 5xx) while the web process is down; paced to keep up with `publisher`, not overtake it."""

    url: str
    deliveries: list[bytes]
    publisher: Publisher
    done: int = 0
    retries: int = 0
    error: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def _deliver(self, client: httpx.Client, body: bytes) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": stripe_signature(body, TEST_SECRET),
                }
                response = client.post("/webhooks/stripe", content=body, headers=headers)
                if response.status_code == 200:
                    return
                assert response.status_code >= 500, f"{response.status_code}: {response.text}"
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"delivery {self.done} not accepted within {DEADLINE_S} s")
            self.retries += 1
            time.sleep(0.2)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=10) as client:
                for i, body in enumerate(self.deliveries):
                    published = self.publisher
                    while published.done / len(published.messages) < i / len(self.deliveries):
                        if published.finished.is_set():
                            break
                        time.sleep(0.02)
                    self._deliver(client, body)
                    self.done += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.finished.set()


def start_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def wait_until(describe: str, read: Callable[[], Any], ok: Callable[[Any], bool], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    seen: Any = None
    while time.monotonic() < deadline:
        try:
            seen = read()
        except (httpx.HTTPError, psycopg.OperationalError) as exc:
            seen = exc  # a service restarting
        else:
            if ok(seen):
                return seen
        time.sleep(0.25)
    raise AssertionError(f"{describe}: still {seen!r} after {timeout_s} s")


@dataclass
class Crash:
    """SIGKILL `services` (then restart them) once `progress()` reaches `at`."""

    services: tuple[str, ...]
    measure: str  # "stored": webhook events in PostgreSQL; "posted": webhook deliveries accepted
    at: int


def crash_schedule(rng: random.Random, events: int, posts: int) -> list[Crash]:
    """Three crashes at random progress points: the processor alone and the processor with the
    Postgres sink, when random numbers of events are stored; the web process (ingest, API and
    ClickHouse sink) while the webhook deliveries are under way, so ingest dies mid-delivery.
    (Every restart costs a process start-up and a consumer-group rebalance that waits out the
    dead member's session, so there are no more than this.)"""
    return [
        Crash(("processor",), "stored", int(rng.uniform(0.05, 0.8) * events)),
        Crash(("processor", "sink-postgres"), "stored", int(rng.uniform(0.05, 0.8) * events)),
        Crash(("web",), "posted", int(rng.uniform(0.2, 0.8) * posts)),
    ]


def cli(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        env=pipeline.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ledger_sums(pipeline: Pipeline) -> dict[bool, dict[str, dict[str, int]]]:
    sums: dict[bool, dict[str, dict[str, int]]] = {}
    for livemode, currency, gross, refunds in pipeline.sql(
        "SELECT livemode, currency, sum(amount_minor) FILTER (WHERE kind = 'payment'), "
        "coalesce(sum(amount_minor) FILTER (WHERE kind = 'refund'), 0) "
        "FROM revenue_ledger WHERE counted GROUP BY 1, 2"
    ):
        sums.setdefault(livemode, {})[currency] = {
            "gross": int(gross),
            "refunds": int(refunds),
            "net": int(gross) - int(refunds),
        }
    return sums


def api_totals(pipeline: Pipeline, livemode: bool) -> dict[str, dict[str, int]]:
    """The query API's totals, limited to the figures this history can produce."""
    return {
        currency: {k: figures.get(k) for k in ("gross", "refunds", "net")}
        for currency, figures in pipeline.totals(livemode).items()
    }


def test_sigkilled_services_lose_nothing_count_nothing_twice_and_the_audit_chain_holds(
    pipeline: Pipeline,
) -> None:
    rng = random.Random(SEED)
    history: History = generate_history(rng, MIN_EVENTS)
    expected = history.expected
    unique = len(history.events)
    deliveries = history.events + rng.sample(history.events, round(unique * DUPLICATE_SHARE))
    rng.shuffle(deliveries)  # duplicates are the very same bytes, delivered again later
    posted, published = deliveries[:HTTP_DELIVERIES], deliveries[HTTP_DELIVERIES:]
    print(
        f"{unique} events ({expected.payments} payments, {expected.refunds} refunds, "
        f"{len(expected.order_status)} orders), {len(deliveries)} deliveries"
    )

    started = time.monotonic()
    publisher = Publisher(
        pipeline.services.kafka_bootstrap,
        pipeline.topics.raw,
        [raw_envelope(body) for body in published],
        PUBLISH_RATE_PER_S,
    )
    poster = Poster(pipeline.url, posted, publisher)
    threads = [start_thread(publisher.run, "raw-publisher"), start_thread(poster.run, "stripe-poster")]
    polling = psycopg.connect(pipeline.database_url, autocommit=True)  # one connection for all polls

    def stored_events() -> int:
        return int(polling.execute("SELECT count(*) FROM webhook_events").fetchone()[0])  # type: ignore[index]

    pending = crash_schedule(rng, unique, len(posted))
    performed = []
    deadline = time.monotonic() + DEADLINE_S
    while pending:
        assert time.monotonic() < deadline, f"crashes never became due: {pending}"
        for sender in (publisher, poster):
            if sender.error is not None:
                raise AssertionError(f"{type(sender).__name__} failed") from sender.error
        progress = {"stored": stored_events(), "posted": poster.done}
        for crash in [c for c in pending if progress[c.measure] >= c.at]:
            for name in crash.services:
                pipeline.kill(name)
            for name in crash.services:
                pipeline.start(name)
            pending.remove(crash)
            performed.append((crash.services, progress, publisher.done))
        time.sleep(0.2)
    print(f"crashes (services, progress, raw published): {performed}")

    for thread in threads:
        thread.join(timeout=DEADLINE_S)
        assert not thread.is_alive(), f"{thread.name} stuck"
    for sender in (publisher, poster):
        if sender.error is not None:
            raise AssertionError(f"{type(sender).__name__} failed") from sender.error
    assert poster.done == len(posted) and publisher.done == len(published)
    print(f"all delivered after {time.monotonic() - started:.0f} s; {poster.retries} webhook posts retried")

    # Exact end state, in PostgreSQL and in ClickHouse.
    wait_until("webhook events stored", stored_events, lambda n: n == unique, 180)
    wait_until("ledger sums", lambda: ledger_sums(pipeline), lambda s: s == expected.totals, 60)
    for livemode in (True, False):
        wanted = expected.totals.get(livemode, {})
        wait_until(
            f"API totals livemode={livemode}",
            lambda m=livemode: api_totals(pipeline, m),
            lambda t, w=wanted: t == w,
            120,
        )
    rows = pipeline.sql(
        "SELECT kind, count(*) FROM revenue_ledger WHERE kind IN ('payment', 'refund') GROUP BY 1"
    )
    assert dict(rows) == {"payment": expected.payments, "refund": expected.refunds}
    assert dict(pipeline.sql("SELECT order_id, status FROM orders")) == expected.order_status
    print(f"exact totals after {time.monotonic() - started:.0f} s")

    # One receipt per ledger record: duplicates, re-deliveries after crashes and stale events wrote none.
    receipts = dict(
        pipeline.sql(
            "SELECT kind, count(*) FROM audit_receipts WHERE record_type = 'ledger' "
            "AND kind IN ('payment', 'refund') GROUP BY 1"
        )
    )
    assert receipts == {"payment": expected.payments, "refund": expected.refunds}
    (head,) = pipeline.sql("SELECT last_seq, last_hash FROM audit_chain_head")

    # A replay straight into the sinks (derived events re-delivered, as after a processor crash, but
    # past the processor's in-memory dedupe): only the stores' idempotence prevents a double count.
    (replay_start,) = pipeline.sql("SELECT now()")[0]
    replay = [
        derive(RawEnvelope.from_bytes(raw_envelope(b)[1])) for b in rng.sample(history.events, REPLAYED)
    ]
    replayer = Publisher(
        pipeline.services.kafka_bootstrap,
        pipeline.topics.events,
        [(d.event.provider_event_id.encode(), d.to_bytes()) for d in replay],
        10_000,
    )
    replayer.run()
    assert replayer.error is None
    wait_until(
        "replayed events re-applied",
        lambda: polling.execute(
            "SELECT count(*) FROM webhook_events WHERE provider_event_id = ANY(%s) AND processed_at > %s",
            ([d.event.provider_event_id for d in replay], replay_start),
        ).fetchone()[0],  # type: ignore[index]
        lambda n: n == REPLAYED,
        120,
    )
    polling.close()
    assert pipeline.sql("SELECT last_seq, last_hash FROM audit_chain_head") == [head]
    assert ledger_sums(pipeline) == expected.totals

    result = cli(pipeline, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"audit verify: OK: {head[0]} receipts" in result.stdout
    print(result.stdout.strip())

    # Edit one receipt the way an insider would (append-only guard switched off): named exactly.
    seq = rng.randint(1, head[0])
    (record_id,) = pipeline.sql("SELECT record_id FROM audit_receipts WHERE seq = %s", seq)[0]
    with psycopg.connect(pipeline.database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_receipts SET amount_minor = amount_minor + 1 WHERE seq = %s", (seq,))
    result = cli(pipeline, "audit", "verify")
    assert result.returncode == 1, result.stdout
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith(
        f"audit verify: FAILED at receipt #{seq}, record {record_id}: hash mismatch"
    ), result.stdout
    print(f"finished after {time.monotonic() - started:.0f} s")
