"""Test tiers and the real-services fixtures.

Unit tests need nothing. Integration tests (marked `integration`) get Kafka and PostgreSQL once
per session from tests/services.py (testcontainers when a Docker engine exists, local processes
otherwise) and, per test, an isolated pipeline: its own topic prefix, database and chdb
directory, with the services running as real `revstream run ...` subprocesses. A failed test's
logs and data stay under pytest's tmp_path for inspection, and their tails are printed.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from revstream.localservices.kafka import create_topics
from schemas.topics import Topics
from sinks.postgres.migrations import apply_migrations
from tests.services import ServiceEndpoints, free_port, test_services
from tests.stripe_fixtures import stripe_signature

REPO = Path(__file__).resolve().parents[1]
TEST_SECRET = "whsec_revstream_test_secret"
EU_SECRET = "whsec_revstream_test_eu_secret"
ADMIN_TOKEN = "revstream-test-admin-token"
GUMROAD_TOKEN = "gr_revstream_test_token"
GUMROAD_SELLER = "asdfasdfasdfasdf=="  # the published test ping's seller (tests/gumroad_fixtures.py)
PIPELINE_SERVICES = ("web", "processor", "sink-postgres")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceEndpoints]:
    with test_services(tmp_path_factory.mktemp("services")) as endpoints:
        yield endpoints


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def topic_message_count(bootstrap: str, topic: str) -> int:
    """Messages ever written to `topic` (end minus beginning offsets over all partitions)."""

    async def count() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
            if not partitions:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - first metadata fetch
                partitions = [
                    TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())
                ]
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions)
            return sum(ends[tp] - starts[tp] for tp in partitions)
        finally:
            await consumer.stop()

    return asyncio.run(count())


class Pipeline:
    """One isolated revstream deployment on the session's Kafka and PostgreSQL."""

    def __init__(self, services: ServiceEndpoints, workdir: Path) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.services = services
        self.workdir = workdir
        self.topics = Topics(prefix=f"t{suffix}.")
        self.database_url = create_database(services.postgres_url, f"revstream_{suffix}")
        apply_migrations(self.database_url)
        create_topics(services.kafka_bootstrap, self.topics.all())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "STRIPE_WEBHOOK_SECRET": TEST_SECRET,
            "REVSTREAM_STRIPE_ENDPOINTS": json.dumps({"eu": {"entity": "acme-eu", "secrets": [EU_SECRET]}}),
            "REVSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
            "GUMROAD_WEBHOOK_SECRET": GUMROAD_TOKEN,
            "GUMROAD_SELLER_IDS": GUMROAD_SELLER,
            "KAFKA_BOOTSTRAP_SERVERS": services.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
            "CLICKHOUSE_URL": f"chdb://{workdir / 'clickhouse'}",
            "REVSTREAM_DATA_DIR": str(workdir),
            "REVSTREAM_TOPIC_PREFIX": self.topics.prefix,
            "REVSTREAM_SINK_FLUSH_MS": "100",
            "PORT": str(self.port),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(base_url=self.url, timeout=10)

    # -- processes -------------------------------------------------------------------------
    def start(self, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "revstream", "run", name],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if name == "web":
            self.wait_healthy()

    def start_all(self) -> None:
        for name in PIPELINE_SERVICES:
            self.start(name)

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs["web"].poll() is not None:
                raise AssertionError(f"web exited early:\n{self.log_tail('web')}")
            try:
                if self.http.get("/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"web not healthy after {timeout_s} s:\n{self.log_tail('web')}")

    def kill(self, name: str) -> None:
        """SIGKILL: no flush, no offset commit, no goodbye."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.http.close()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- traffic ---------------------------------------------------------------------------
    def post_stripe(
        self,
        body: bytes,
        secret: str = TEST_SECRET,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe_signature(body, secret, timestamp),
        }
        return self.http.post("/webhooks/stripe", content=body, headers={**sent, **(headers or {})})

    def deliver(self, body: bytes, deadline_s: float = 60) -> None:
        """Deliver like Stripe does: retry on connection errors and 5xx until a 2xx."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                response = self.post_stripe(body)
                if response.status_code == 200:
                    return
                assert response.status_code >= 500, response.text  # a 4xx would be our bug here
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"not accepted within {deadline_s} s")
            time.sleep(0.2)

    def post_manual(
        self, entry: dict[str, Any] | bytes, key: str | None, token: str | None = ADMIN_TOKEN
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = entry if isinstance(entry, bytes) else json.dumps(entry).encode()
        return self.http.post("/api/v1/manual-entries", content=body, headers=headers)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `revstream <args>` against this deployment, as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "revstream", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def totals(self, livemode: bool = True) -> dict[str, dict[str, int]]:
        """gross, refunds and net per currency (ledger_totals has every figure)."""
        return {
            currency: {key: figures[key] for key in ("gross", "refunds", "net")}
            for currency, figures in self.ledger_totals(livemode).items()
        }

    def ledger_totals(self, livemode: bool = True) -> dict[str, dict[str, int]]:
        response = self.http.get("/api/v1/revenue/totals", params={"livemode": str(livemode).lower()})
        response.raise_for_status()
        return dict(response.json()["currencies"])

    def wait_for_totals(
        self, expected: dict[str, dict[str, int]], livemode: bool, timeout_s: float = 90
    ) -> None:
        deadline = time.monotonic() + timeout_s
        seen: Any = None
        while time.monotonic() < deadline:
            try:
                seen = self.totals(livemode)
            except httpx.HTTPError:
                seen = None  # web restarting
            if seen == expected:
                return
            time.sleep(0.3)
        raise AssertionError(f"totals (livemode={livemode}) never became {json.dumps(expected)}; last {seen}")

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return list(conn.execute(query, params).fetchall())

    def raw_message_count(self) -> int:
        return topic_message_count(self.services.kafka_bootstrap, self.topics.raw)


@pytest.fixture
def pipeline(
    services: ServiceEndpoints, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    deployment = Pipeline(services, tmp_path)
    try:
        deployment.start_all()
        yield deployment
    finally:
        deployment.stop_all()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for name in PIPELINE_SERVICES:
                print(f"\n----- {name}.log (kept in {tmp_path}) -----\n{deployment.log_tail(name)}")
