"""`revstream up`: the embedded default on one machine, no Docker.

Starts a local Apache Kafka (KRaft) and PostgreSQL in the data directory, applies migrations,
creates the topics, then runs the pipeline as child processes:
  ingest         webhooks, manual entries, operator endpoints on PORT; forwards the rest to analytics
  analytics      query API + ClickHouse sink (chdb) on a private port (127.0.0.1, free port)
  processor      revenue.raw.v1 -> revenue.events.v1
  sink-postgres  revenue.events.v1 -> PostgreSQL
  anomalies      revenue.events.v1 -> alerts; summaries: daily/weekly summaries
  slack          alerts and summaries -> SLACK_WEBHOOK_URL (only when it is set)
A child that dies is restarted. Ctrl-C / SIGTERM stops the children first (so in-flight batches
commit), then PostgreSQL, then Kafka: nothing is left running.
"""

import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from revstream.localservices import LocalServiceError, free_port
from revstream.localservices.kafka import LocalKafka, create_topics, ensure_kafka_jars
from revstream.localservices.postgres import LocalPostgres, unreachable_ancestor
from revstream.settings import Settings, SettingsError
from revstream.wiring import topics_for
from sinks.postgres.migrations import apply_migrations

KAFKA_PORT, KAFKA_CONTROLLER_PORT, POSTGRES_PORT = 19092, 19093, 15432
CHILDREN = ("ingest", "analytics", "processor", "sink-postgres", "anomalies", "summaries")
# Ingest is its own process so that acknowledging a webhook never waits behind ClickHouse inserts or
# analyst queries (one event loop, one GIL): measured in README "Performance".
# Everything but ingest is catch-up work: under a burst the machine's CPU goes to acknowledging
# webhooks first (a provider that waits too long retries and may disable the endpoint), and the
# consumers work off the backlog Kafka holds as soon as the burst leaves them room. Measured in
# README "Performance". Kafka and PostgreSQL keep the default priority: ingest waits on Kafka.
BACKGROUND_NICE = 10
BACKGROUND_CHILDREN = ("analytics", "processor", "sink-postgres", "anomalies", "summaries", "slack")
STOP_GRACE_S = 20
ANALYTICS_HOST = "127.0.0.1"


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor is killed outright, so none is orphaned."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _background_child() -> None:
    """A consumer or analytics child: dies with the supervisor, yields the CPU to ingest."""
    _die_with_parent()
    os.nice(BACKGROUND_NICE)


def say(message: str) -> None:
    print(f"revstream: {message}", flush=True)


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.resolved_data_dir
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        # The Slack sink runs only when SLACK_WEBHOOK_URL is set (its outbox waits meanwhile).
        self.child_names = (*CHILDREN, *(("slack",) if settings.slack_webhook_url else ()))
        self.restarts: dict[str, list[float]] = {name: [] for name in self.child_names}
        self.stopping = False
        self.analytics_port = free_port(ANALYTICS_HOST)

    @property
    def analytics_url(self) -> str:
        return f"http://{ANALYTICS_HOST}:{self.analytics_port}"

    def child_env(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """Ingest answers on HOST:PORT and forwards to analytics, which listens on loopback only
        (even with HOST=0.0.0.0): the API is reached through ingest's port."""
        if name == "ingest":
            return {**env, "REVSTREAM_API_UPSTREAM": self.analytics_url}
        if name == "analytics":
            return {**env, "HOST": ANALYTICS_HOST, "PORT": str(self.analytics_port)}
        return env

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            say(f"{signal.Signals(signum).name} received: stopping (children, PostgreSQL, Kafka)...")
        self.stopping = True

    def _lock_data_dir(self) -> Path:
        """One `up` per data directory: chdb, Kafka and PostgreSQL each allow a single owner."""
        lock = self.data_dir / "revstream-up.pid"
        if lock.exists():
            try:
                pid = int(lock.read_text().strip())
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, PermissionError):
                pass  # stale lock from a killed run
            else:
                raise SettingsError(
                    f"another `revstream up` (pid {pid}) is using {self.data_dir}: stop it first, or set "
                    "REVSTREAM_DATA_DIR to another directory"
                )
        lock.write_text(str(os.getpid()))
        return lock

    def _postgres_dir(self) -> Path:
        """PostgreSQL's data lives in the data directory when the `postgres` user can reach it.
        As root with the data directory under a private home (e.g. /root, mode 700), it lives in
        /var/lib/revstream/<id of the data dir> instead, the same place on every restart."""
        wanted = self.data_dir / "postgres"
        if unreachable_ancestor(wanted) is None:
            return wanted
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        fallback = Path("/var/lib/revstream") / digest / "postgres"
        fallback.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        (self.data_dir / "postgres-data-location.txt").write_text(f"{fallback}\n")
        say(f"the postgres user cannot reach {self.data_dir}: PostgreSQL data kept in {fallback}")
        return fallback

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        log_path = self.data_dir / "logs" / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "revstream", "run", name],
            env=self.child_env(name, env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the supervisor, which stops children in order
            preexec_fn=_background_child if name in BACKGROUND_CHILDREN else _die_with_parent,
        )
        log_file.close()

    def wait_healthy(self, timeout_s: float = 60) -> None:
        """Until ingest (PORT) and analytics answer /health; a child that exits meanwhile is an error."""
        urls = {
            "ingest": f"http://{self.settings.host}:{self.settings.port}",
            "analytics": self.analytics_url,
        }
        deadline = time.monotonic() + timeout_s
        for name, url in urls.items():
            while not self.stopping:
                child = self.children[name]
                if child.poll() is not None:
                    raise LocalServiceError(
                        f"{name} exited with {child.returncode}: see {self.data_dir / 'logs' / (name + '.log')}"
                    )
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LocalServiceError(
                        f"{name} did not answer /health in {timeout_s:.0f} s: see logs/{name}.log"
                    )
                time.sleep(0.2)

    def _stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in {STOP_GRACE_S} s: killing it")
                child.kill()
                child.wait()

    def _restart_if_dead(self, env: dict[str, str]) -> None:
        for name, child in list(self.children.items()):
            if child.poll() is None:
                continue
            now = time.monotonic()
            recent = [t for t in self.restarts[name] if now - t < 60]
            if len(recent) >= 5:
                raise LocalServiceError(
                    f"{name} keeps exiting (5 times in a minute): see {self.data_dir / 'logs' / (name + '.log')}"
                )
            say(f"{name} exited with {child.returncode}; restarting it")
            self.restarts[name] = [*recent, now]
            self._spawn(name, env)

    def run(self) -> int:
        self.settings.require("STRIPE_WEBHOOK_SECRET")
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        lock = self._lock_data_dir()
        kafka: LocalKafka | None = None
        postgres: LocalPostgres | None = None
        try:
            bootstrap = self.settings.kafka_bootstrap_servers
            if bootstrap is None:
                say("preparing Apache Kafka (the first run downloads the broker from Maven Central)...")
                ensure_kafka_jars(progress=say)
                kafka = LocalKafka(
                    self.data_dir / "kafka", port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT
                )
                say("starting Kafka...")
                kafka.start()
                bootstrap = kafka.bootstrap_servers
            database_url = self.settings.database_url
            if database_url is None:
                say("starting PostgreSQL...")
                postgres = LocalPostgres(self._postgres_dir(), port=POSTGRES_PORT)
                postgres.start()
                database_url = postgres.create_database("revstream")
            applied = apply_migrations(database_url)
            say(f"PostgreSQL migrations applied: {', '.join(applied) or 'none pending'}")
            create_topics(bootstrap, topics_for(self.settings).all())
            env = {
                **os.environ,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "DATABASE_URL": database_url,
                "CLICKHOUSE_URL": self.settings.resolved_clickhouse_url,
                "REVSTREAM_DATA_DIR": str(self.data_dir),
            }
            for name in self.child_names:
                self._spawn(name, env)
            url = f"http://{self.settings.host}:{self.settings.port}"
            self.wait_healthy()
            if not self.stopping:
                say("ready")
                print(
                    f"\n  Stripe webhook endpoint  POST {url}/webhooks/stripe\n"
                    f"  Revenue totals           GET  {url}/api/v1/revenue/totals   (?livemode=false for test data)\n"
                    f"  Health / metrics         GET  {url}/health   {url}/metrics (ingest)   "
                    f"{self.analytics_url}/metrics (analytics)\n"
                    f"  Kafka                    {bootstrap}\n"
                    f"  PostgreSQL               {database_url}\n"
                    f"  ClickHouse (chdb)        {self.settings.resolved_clickhouse_url}  (owned by the analytics process)\n"
                    f"  Data and logs            {self.data_dir}\n\n"
                    "  Ctrl-C stops everything.\n",
                    flush=True,
                )
            while not self.stopping:
                self._restart_if_dead(env)
                time.sleep(0.5)
            return 0
        except LocalServiceError as exc:
            say(f"error: {exc}")
            return 1
        finally:
            self.stopping = True
            self._stop_children()
            if postgres is not None:
                postgres.stop()
            if kafka is not None:
                kafka.stop()
            lock.unlink(missing_ok=True)
            say("stopped")
