"""A single-node KRaft Apache Kafka broker run from Maven Central jars (no Docker needed)."""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from revstream.localservices import LocalServiceError, pid_alive, port_in_use, process_cmdline

__all__ = ["KAFKA_VERSION", "LocalKafka", "create_topics", "ensure_kafka_jars"]

# Must match kafka.version in deploy/kafka/pom.xml: the jar cache directory is keyed by it.
KAFKA_VERSION = "4.1.1"

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
# C1 only (no C2): on this 2-core machine the C2 compiler thread kept recompiling the broker's
# request path for as long as webhooks flowed (half the JVM's CPU at 2,000 produce requests/s, even
# after 60,000 warm-up requests), while C1 code handled requests only ~15% slower. Measured with a
# standalone ingest: Kafka CPU per request 366-428 -> 212 us paced at 2,000/s, 35 -> 16 us unpaced.
BROKER_JVM_OPTIONS = ("-Xmx512m", "-Xms128m", "-XX:TieredStopAtLevel=1")
LOG4J_CONFIG = REPO_ROOT / "deploy" / "kafka" / "log4j2.properties"

_INSTALL_HINT = "install a JDK 17 and Maven: apt-get install -y openjdk-17-jre-headless maven"
_MARKER = ".complete"
_T = TypeVar("_T")


def default_cache_dir() -> Path:
    """``$REVSTREAM_CACHE_DIR`` if set, else ``~/.cache/revstream``."""
    env = os.environ.get("REVSTREAM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "revstream"


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalServiceError(f"`{name}` not found on PATH (needed for local Kafka): {_INSTALL_HINT}")
    return path


def ensure_kafka_jars(cache_dir: Path | None = None, progress: Callable[[str], None] = print) -> Path:
    """Return a directory holding the Kafka broker jars, fetching them with Maven on first use.

    Jars live in ``<cache>/kafka-<KAFKA_VERSION>/libs``. The fetch goes to a temporary sibling
    directory which is renamed into place and then marked complete, so an interrupted fetch never
    leaves a half-populated cache that would later be mistaken for a good one.
    """
    _require_tool("java")
    version_dir = (cache_dir or default_cache_dir()) / f"kafka-{KAFKA_VERSION}"
    libs = version_dir / "libs"
    marker = version_dir / _MARKER
    if marker.is_file() and libs.is_dir():
        return libs

    mvn = _require_tool("mvn")
    if not POM_PATH.is_file():
        raise LocalServiceError(f"{POM_PATH} is missing: restore deploy/kafka/pom.xml from the repository")
    version_dir.mkdir(parents=True, exist_ok=True)
    progress(f"Fetching Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (one-time, ~45 MB)...")
    tmp = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=version_dir))
    try:
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM_PATH),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            output = (result.stdout + result.stderr).strip().splitlines()[-40:]
            raise LocalServiceError(
                f"fetching Kafka jars with Maven failed (exit {result.returncode}): check network access to "
                f"Maven Central (or ~/.m2/settings.xml mirrors) and retry.\n" + "\n".join(output)
            )
        # A previous incomplete attempt may have left libs/ behind without the marker.
        if libs.exists():
            shutil.rmtree(libs)
        tmp.rename(libs)
        marker.write_text(f"kafka {KAFKA_VERSION}\n")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    progress(f"Kafka jars ready in {libs}")
    return libs


def _run_async(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if the caller is inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # A running loop in this thread forbids asyncio.run here: use a private loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


async def metadata_ok(bootstrap_servers: str, wait_s: float) -> bool:
    """True if the broker answers a metadata request and lists at least one live broker."""
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=max(1000, int(wait_s * 1000)),
        retry_backoff_ms=100,
    )
    try:
        await asyncio.wait_for(client.bootstrap(), wait_s)
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        try:
            await client.close()
        except Exception:
            pass


def _new_cluster_id() -> str:
    # Same shape as `kafka-storage random-uuid`: URL-safe base64 of 16 random bytes, 22 chars.
    # It may start with "-", so it is always passed as --cluster-id=<id>.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LocalKafka:
    """One KRaft Kafka node (broker + controller) listening on 127.0.0.1.

    All state lives in ``data_dir`` (config, cluster id, topic data, ``kafka.log``), so starting
    again on the same directory keeps topics and messages.
    """

    def __init__(
        self, data_dir: Path, port: int = 19092, controller_port: int = 19093, partitions: int = 4
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.partitions = partitions
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:<port>"``, for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running java process, or None when not started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        """Broker stdout+stderr (appended across runs)."""
        return self.data_dir / "kafka.log"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def _pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    def _write_config(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _cluster_id(self) -> str:
        # Persisted so a re-format (e.g. after meta.properties was deleted) reuses the same identity.
        path = self.data_dir / "cluster.id"
        if path.is_file() and len(path.read_text().strip()) == 22:
            return path.read_text().strip()
        cid = _new_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def _java_base(self, libs: Path, *jvm_opts: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"
        return [_require_tool("java"), *jvm_opts, "-cp", f"{libs}/*", log4j]

    def _format_storage(self, libs: Path, config: Path) -> None:
        if (self._log_dirs / "meta.properties").is_file():
            return
        cmd = [
            *self._java_base(libs),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self._cluster_id()}",  # one token: an id may start with "-"
            "-c",
            str(config),
            "--ignore-formatted",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n=== revstream: formatting storage in {self._log_dirs} ===\n".encode())
            log.flush()
            result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=120)
        if result.returncode != 0:
            raise LocalServiceError(
                f"formatting Kafka storage in {self._log_dirs} failed (exit {result.returncode}): "
                f"see the log; if the directory is corrupt, delete {self.data_dir} and start again",
                self.log_path,
            )

    def _check_leftover(self) -> None:
        # A broker from an earlier, crashed test run on this data dir would hold the ports and the log lock.
        try:
            old = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if pid_alive(old) and b"kafka.Kafka" in process_cmdline(old):
            raise LocalServiceError(
                f"a Kafka broker from a previous run (pid {old}) is still using {self.data_dir}: "
                f"stop it (kill {old}, or LocalKafka(...).stop()) and start again"
            )
        self._pid_file.unlink(missing_ok=True)

    def start(self, timeout: float = 90) -> None:
        """Start the broker and return once it answers metadata requests.

        Idempotent while running. On failure the process is killed and LocalServiceError carries
        the tail of ``kafka.log``.
        """
        if self._proc is not None and self._proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._check_leftover()
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise LocalServiceError(
                    f"cannot start Kafka: port {port} is in use: "
                    "stop whatever holds it or choose another port"
                )
        libs = ensure_kafka_jars()
        config = self._write_config()
        self._format_storage(libs, config)

        cmd = [*self._java_base(libs, *BROKER_JVM_OPTIONS), "kafka.Kafka", str(config)]
        deadline = time.monotonic() + timeout
        with self.log_path.open("ab") as log:
            log.write(f"\n=== revstream: starting Kafka on {self.bootstrap_servers} ===\n".encode())
            log.flush()
            # New session: Ctrl-C in the parent terminal must not kill the broker mid-write;
            # stop() (or the atexit hook) shuts it down in order.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        self._pid_file.write_text(f"{self._proc.pid}\n")
        atexit.register(self._stop_at_exit)

        # aiokafka logs every refused connection at ERROR while the broker boots; that is expected here.
        aiokafka_log = logging.getLogger("aiokafka")
        saved_level = aiokafka_log.level
        aiokafka_log.setLevel(logging.CRITICAL)
        try:
            self._wait_ready(deadline, timeout)
        finally:
            aiokafka_log.setLevel(saved_level)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._forget()
                raise LocalServiceError(
                    f"Kafka exited during startup (exit {code}): see the log below; "
                    f"if storage is corrupt, delete {self.data_dir} and retry",
                    self.log_path,
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(timeout=10)
                raise LocalServiceError(
                    f"Kafka did not become ready on {self.bootstrap_servers} within {timeout:.0f}s: "
                    "see the log below; retry with a larger timeout if the machine is slow",
                    self.log_path,
                )
            probe = functools.partial(metadata_ok, self.bootstrap_servers, min(5.0, max(remaining, 0.5)))
            if _run_async(probe):
                return
            time.sleep(0.3)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after ``timeout``; waits for exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        self._forget()

    def _forget(self) -> None:
        self._proc = None
        self._pid_file.unlink(missing_ok=True)
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        try:
            self.stop(timeout=15)
        except Exception:
            pass

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _create_topics(bootstrap_servers: str, topics: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name=t, num_partitions=partitions, replication_factor=1) for t in topics]
        )
        failures = []
        for entry in response.topic_errors:
            name, code = entry[0], entry[1]
            if code == 0:
                continue
            error = for_code(code)
            if error is TopicAlreadyExistsError:
                continue
            failures.append(f"{name}: {error.__name__} {entry[2] if len(entry) > 2 else ''}".rstrip())
        if failures:
            raise LocalServiceError(
                f"creating Kafka topics on {bootstrap_servers} failed: {'; '.join(failures)}: "
                "fix the topic names/settings or check the broker log"
            )
    finally:
        await admin.close()


def create_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int = 4) -> None:
    """Create ``topics`` (replication factor 1) if missing; topics that already exist are left as they are."""
    names = list(dict.fromkeys(topics))
    if names:
        _run_async(lambda: _create_topics(bootstrap_servers, names, partitions))
