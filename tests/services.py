"""Kafka + PostgreSQL endpoints for integration tests: reused, Docker (testcontainers) or local processes.

Selection, per service:
  1. ``REVSTREAM_TEST_KAFKA`` / ``REVSTREAM_TEST_DATABASE_URL`` set: use that already-running service.
  2. a Docker engine is reachable (``docker info`` exits 0 within 5 s) or ``REVSTREAM_TEST_DOCKER=1``:
     testcontainers.
  3. otherwise: LocalKafka / LocalPostgres processes on free ports under ``base_dir``.
Whatever this module starts, it stops again, also when the test session fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revstream.localservices.kafka import LocalKafka
from revstream.localservices.postgres import LocalPostgres, unreachable_ancestor

__all__ = ["ServiceEndpoints", "docker_available", "free_port", "test_services"]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:15"


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where the tests find their services.

    ``backend`` is "external", "docker" or "local"; "external+local" / "external+docker" when only
    one of the two services was provided through the environment.
    """

    kafka_bootstrap: str
    postgres_url: str
    backend: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_available() -> bool:
    """True if REVSTREAM_TEST_DOCKER=1 or ``docker info`` succeeds within 5 seconds."""
    if os.environ.get("REVSTREAM_TEST_DOCKER") == "1":
        return True
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5, check=False
        )
    except (subprocess.TimeoutExpired, OSError):
        return False
    return result.returncode == 0


def _start_docker_kafka(stack: ExitStack) -> str:
    try:
        from testcontainers.community.kafka import KafkaContainer  # type: ignore[import-not-found]
    except ImportError:  # testcontainers < 4.13 layout
        from testcontainers.kafka import KafkaContainer

    container: Any = KafkaContainer(KAFKA_IMAGE).with_kraft()
    stack.enter_context(container)  # __exit__ stops and removes the container
    return str(container.get_bootstrap_server())


def _start_docker_postgres(stack: ExitStack) -> str:
    try:
        from testcontainers.community.postgres import PostgresContainer  # type: ignore[import-not-found]
    except ImportError:
        from testcontainers.postgres import PostgresContainer

    container: Any = PostgresContainer(POSTGRES_IMAGE, driver=None)
    stack.enter_context(container)
    return str(container.get_connection_url())


def _start_local_kafka(stack: ExitStack, base_dir: Path) -> str:
    kafka = LocalKafka(base_dir / "kafka", port=free_port(), controller_port=free_port())
    stack.callback(kafka.stop)  # registered first: stop() is a no-op if start() failed half-way
    kafka.start()
    return kafka.bootstrap_servers


def _start_local_postgres(stack: ExitStack, base_dir: Path) -> str:
    data_dir = base_dir / "postgres"
    if unreachable_ancestor(data_dir) is not None:
        # As root, the server runs as 'postgres', which cannot enter pytest's 0700 basetemp
        # (/tmp/pytest-of-root): put the cluster in its own /tmp directory and remove it afterwards.
        data_dir = Path(tempfile.mkdtemp(prefix="revstream-pg-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
    postgres = LocalPostgres(data_dir, port=free_port())
    stack.callback(postgres.stop)
    postgres.start()
    return postgres.url


@contextmanager
def test_services(base_dir: Path) -> Iterator[ServiceEndpoints]:
    """Provide Kafka and PostgreSQL for a test session; stop whatever was started on exit."""
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    kafka_env = os.environ.get("REVSTREAM_TEST_KAFKA")
    db_env = os.environ.get("REVSTREAM_TEST_DATABASE_URL")

    with ExitStack() as stack:
        started: str | None = None
        if kafka_env and db_env:
            kafka_bootstrap, postgres_url = kafka_env, db_env
        elif docker_available():
            started = "docker"
            kafka_bootstrap = kafka_env or _start_docker_kafka(stack)
            postgres_url = db_env or _start_docker_postgres(stack)
        else:
            started = "local"
            kafka_bootstrap = kafka_env or _start_local_kafka(stack, base_dir)
            postgres_url = db_env or _start_local_postgres(stack, base_dir)

        if started is None:
            backend = "external"
        elif kafka_env or db_env:
            backend = f"external+{started}"
        else:
            backend = started
        yield ServiceEndpoints(kafka_bootstrap=kafka_bootstrap, postgres_url=postgres_url, backend=backend)


test_services.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, if imported into a test module
