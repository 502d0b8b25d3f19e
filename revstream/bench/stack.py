"""The embedded default (as `revstream up` runs it) in a temporary directory on free ports, so a
benchmark never touches `.revstream/` or collides with a `revstream up` already running."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from revstream.embedded import Supervisor
from revstream.localservices import free_port
from revstream.localservices.kafka import LocalKafka, create_topics, ensure_kafka_jars
from revstream.localservices.postgres import LocalPostgres
from revstream.settings import Settings
from revstream.wiring import topics_for
from sinks.postgres.migrations import apply_migrations


class BenchStack:
    """Kafka + PostgreSQL + the pipeline children of `revstream up`, started piece by piece."""

    def __init__(self, secret: str, say: Callable[[str], None] = print) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="revstream-bench-"))
        self.data_dir.chmod(0o755)  # the postgres user must reach its data directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secret
        self._say = say
        self.settings = Settings.model_validate(
            {"REVSTREAM_DATA_DIR": str(self.data_dir), "PORT": self.port, "STRIPE_WEBHOOK_SECRET": secret}
        )
        self.supervisor = Supervisor(self.settings)
        self.kafka: LocalKafka | None = None
        self.postgres: LocalPostgres | None = None
        self.env: dict[str, str] = {}
        self.database_url = ""

    @property
    def bootstrap(self) -> str:
        assert self.kafka is not None
        return self.kafka.bootstrap_servers

    def start_backing(self) -> None:
        """Kafka and PostgreSQL, migrations and topics; no pipeline process yet."""
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        ensure_kafka_jars(progress=self._say)
        self.kafka = LocalKafka(self.data_dir / "kafka", port=free_port(), controller_port=free_port())
        self._say("starting Kafka...")
        self.kafka.start()
        self._say("starting PostgreSQL...")
        self.postgres = LocalPostgres(self.data_dir / "postgres", port=free_port())
        self.postgres.start()
        self.database_url = self.postgres.create_database("revstream")
        apply_migrations(self.database_url)
        create_topics(self.bootstrap, topics_for(self.settings).all())
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
        self.env = {
            **inherited,
            "STRIPE_WEBHOOK_SECRET": self.secret,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.database_url,
            "CLICKHOUSE_URL": self.settings.resolved_clickhouse_url,
            "REVSTREAM_DATA_DIR": str(self.data_dir),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "REVSTREAM_METRICS_PORT": "0",  # the children would share one port
        }

    def start(self, *names: str) -> None:
        """Start pipeline children (ingest + analytics, processor, sink-postgres) as `revstream up` does."""
        for name in names:
            self.supervisor._spawn(name, self.env)  # noqa: SLF001 - the same spawn as `up`
        if "ingest" in names:
            self.supervisor.wait_healthy()

    def pids(self) -> dict[str, int]:
        found = {name: child.pid for name, child in self.supervisor.children.items() if child.poll() is None}
        if self.kafka is not None and self.kafka.pid is not None:
            found["kafka"] = self.kafka.pid
        if self.postgres is not None and self.postgres.pid is not None:
            found["postgres"] = self.postgres.pid
        return found

    def stop(self, keep: bool = False) -> None:
        """Stop children, then PostgreSQL, then Kafka; remove the directory unless `keep`."""
        self.supervisor.stopping = True
        self.supervisor._stop_children()  # noqa: SLF001
        if self.postgres is not None:
            self.postgres.stop()
        if self.kafka is not None:
            self.kafka.stop()
        if keep:
            self._say(f"data and logs kept in {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
