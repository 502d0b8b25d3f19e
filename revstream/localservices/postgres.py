"""A throwaway-or-persistent PostgreSQL server run from the distribution's server binaries (no Docker)."""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from revstream.localservices import LocalServiceError, pid_alive, port_in_use, process_cmdline

__all__ = ["LocalPostgres", "find_postgres_bindir", "unreachable_ancestor"]

SERVICE_USER = "postgres"  # postgres refuses to run as root; as root we drop to this user with runuser
_INSTALL_HINT = "apt-get install -y postgresql"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; postgres rejects longer socket paths


def find_postgres_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres: the newest ``/usr/lib/postgresql/<v>/bin``, else PATH.

    ``pg_config --bindir`` is not used: with only the client package installed it points at a
    directory without the server binaries.
    """

    def version_key(path: str) -> tuple[int, ...]:
        m = re.search(r"/postgresql/([\d.]+)/bin/", path)
        return tuple(int(p) for p in m.group(1).split(".") if p) if m else (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_key)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise LocalServiceError(f"PostgreSQL server binaries not found: {_INSTALL_HINT}")


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _service_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise LocalServiceError(
            f"running as root, but there is no '{SERVICE_USER}' user to run PostgreSQL as: "
            f"{_INSTALL_HINT} (creates it), or run as a non-root user"
        ) from None


def unreachable_ancestor(path: Path) -> Path | None:
    """When running as root: the first existing ancestor of ``path`` the postgres user cannot traverse.

    Returns None if every ancestor is traversable, or when not running as root (then the server
    runs as the current user, who can reach ``path``).
    """
    if not _running_as_root():
        return None
    account = _service_account()
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for ancestor in reversed(Path(path).resolve().parents):
        try:
            st = ancestor.stat()
        except FileNotFoundError:
            break
        if st.st_uid == account.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return ancestor
    return None


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1 with trust auth for user ``postgres``.

    Layout under ``data_dir``: ``pgdata/`` (the cluster, created once by initdb), ``run/`` (Unix
    socket), ``postgres.log``. Starting again on the same ``data_dir`` keeps all data. fsync stays
    on: durability across restarts is part of what the tests check.
    """

    def __init__(self, data_dir: Path, port: int = 15432) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self._bindir: Path | None = None

    # --- public properties -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """Connection URL for database ``name`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{quote(name, safe='')}"

    @property
    def pid(self) -> int | None:
        """PID of the running postmaster (from ``postmaster.pid``), or None if it is not running."""
        pid = self._pidfile_pid()
        return pid if pid is not None and pid_alive(pid) else None

    @property
    def log_path(self) -> Path:
        """Server log (appended across runs)."""
        return self.data_dir / "postgres.log"

    @property
    def pgdata(self) -> Path:
        """The cluster directory (PGDATA)."""
        return self.data_dir / "pgdata"

    # --- internals ----------------------------------------------------------------------------

    @property
    def _socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def _pidfile(self) -> Path:
        return self.pgdata / "postmaster.pid"

    def _pidfile_pid(self) -> int | None:
        try:
            return int(self._pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            self._bindir = find_postgres_bindir()
        return str(self._bindir / name)

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a server binary, as the postgres user when we are root."""
        cmd = ["runuser", "-u", SERVICE_USER, "--", *args] if _running_as_root() else args
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            return subprocess.run(
                cmd, cwd=self.data_dir, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalServiceError(
                f"`{shlex.join(args)}` did not finish within {timeout:.0f}s: see the log below",
                self.log_path,
            ) from exc

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._socket_dir.mkdir(exist_ok=True)
        self.log_path.touch(exist_ok=True)
        if not _running_as_root():
            return
        blocked = unreachable_ancestor(self.data_dir)
        if blocked is not None:
            raise LocalServiceError(
                f"PostgreSQL runs as user '{SERVICE_USER}' (we are root) but cannot traverse {blocked} "
                f"to reach {self.data_dir}: use a data dir under a world-traversable path (e.g. /tmp or "
                f"/var/tmp) or run `chmod o+x {blocked}`"
            )
        account = _service_account()
        for path in (self.data_dir, self._socket_dir, self.log_path):
            os.chown(path, account.pw_uid, account.pw_gid)
        if self.pgdata.exists() and self.pgdata.stat().st_uid != account.pw_uid:
            # e.g. a cluster created by an earlier non-root run: hand it over wholesale.
            for root, dirs, files in os.walk(self.pgdata):
                for name in (*dirs, *files):
                    os.lchown(os.path.join(root, name), account.pw_uid, account.pw_gid)
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)

    def _initdb(self, timeout: float) -> None:
        if (self.pgdata / "PG_VERSION").is_file():
            return
        if self.pgdata.exists():
            raise LocalServiceError(
                f"{self.pgdata} exists but is not a PostgreSQL cluster (no PG_VERSION): "
                f"delete {self.data_dir} and start again"
            )
        # initdb into a sibling and rename, so an interrupted initdb never leaves a half cluster at pgdata/.
        tmp = self.data_dir / "pgdata.initdb-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        result = self._run(
            [
                self._bin("initdb"),
                "-D",
                str(tmp),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=timeout,
        )
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LocalServiceError(
                f"initdb failed (exit {result.returncode}) for {self.pgdata}: fix the cause below and retry\n"
                + (result.stdout + result.stderr).strip()
            )
        tmp.rename(self.pgdata)

    def _server_options(self) -> str:
        socket_file = self._socket_dir / f".s.PGSQL.{self.port}"
        # Too long a socket path makes postgres refuse to start; TCP is all we need, so drop the socket then.
        socket_dir = str(self._socket_dir) if len(str(socket_file)) <= _MAX_SOCKET_PATH else ""
        opts = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            socket_dir,
            "-c",
            "max_connections=200",
        ]
        # pg_ctl hands this string to /bin/sh, so quote each piece.
        return " ".join(shlex.quote(o) for o in opts)

    def _handle_existing_pidfile(self) -> bool:
        """Deal with postmaster.pid left by an earlier run; True if a live server of ours is adopted."""
        pid = self._pidfile_pid()
        if pid is None:
            if self._pidfile.exists():
                self._pidfile.unlink()
            return False
        if not pid_alive(pid) or b"postgres" not in process_cmdline(pid):
            # Stale: the server died without cleaning up (or the PID now belongs to something else).
            self._clear_stale_locks()
            return False
        lines = self._pidfile.read_text().splitlines()
        if len(lines) > 3 and lines[3].strip() == str(self.port) and self._can_connect():
            return True
        raise LocalServiceError(
            f"PostgreSQL (pid {pid}) from a previous run is still running on {self.pgdata} but not usable on "
            f"port {self.port}: stop it with LocalPostgres(data_dir).stop() or "
            f"`{self._bin('pg_ctl')} -D {self.pgdata} stop -m fast`, then start again"
        )

    def _processes_in_pgdata(self) -> list[int]:
        """Live processes whose working directory is our pgdata (every postgres process chdirs there)."""
        target = str(self.pgdata)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "cwd") == target and pid_alive(int(entry.name)):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def _clear_stale_locks(self, wait_s: float = 15) -> None:
        """Remove lock files of a dead postmaster, once none of its backends is left.

        Deleting postmaster.pid bypasses postgres' own "is the old shared memory still attached"
        interlock, so first wait for orphaned backends (they exit on postmaster death) to be gone.
        The socket lock is removed too: postgres would otherwise refuse to start while the dead
        postmaster's PID is still an unreaped zombie (kill(pid, 0) succeeds on zombies).
        """
        end = time.monotonic() + wait_s
        while leftovers := self._processes_in_pgdata():
            if time.monotonic() > end:
                raise LocalServiceError(
                    f"processes {leftovers} from a dead PostgreSQL server still use {self.pgdata}: "
                    f"kill them (kill {' '.join(map(str, leftovers))}) and start again"
                )
            time.sleep(0.2)
        self._pidfile.unlink(missing_ok=True)
        for lock in self._socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
        for sock in self._socket_dir.glob(".s.PGSQL.*[0-9]"):
            sock.unlink(missing_ok=True)

    def _can_connect(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("select 1")
            return True
        except psycopg.Error:
            return False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server (initdb on first use) and return once a connection succeeds.

        Idempotent: a server of ours already running on this data dir and port is reused.
        """
        deadline = time.monotonic() + timeout
        self._bin("initdb")  # fail early with the install hint if binaries are missing
        self._prepare_dirs()
        if self.pgdata.exists() and self._handle_existing_pidfile():
            atexit.register(self._stop_at_exit)
            return
        if port_in_use(self.port):
            raise LocalServiceError(
                f"cannot start PostgreSQL: port {self.port} is in use: "
                "stop whatever holds it or choose another port"
            )
        self._initdb(timeout=max(30.0, timeout))
        with self.log_path.open("a") as log:
            log.write(f"\n=== revstream: starting PostgreSQL on 127.0.0.1:{self.port} ===\n")
        wait_s = max(1, int(deadline - time.monotonic()))
        result = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_path),
                "-o",
                self._server_options(),
                "-w",
                "-t",
                str(wait_s),
                "start",
            ],
            timeout=wait_s + 15,
        )
        atexit.register(self._stop_at_exit)
        if result.returncode != 0:
            self._stop_quietly()
            raise LocalServiceError(
                f"PostgreSQL failed to start on port {self.port} (pg_ctl exit {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()}): see the log below",
                self.log_path,
            )
        while not self._can_connect():
            if time.monotonic() > deadline:
                self._stop_quietly()
                raise LocalServiceError(
                    f"PostgreSQL started but accepted no connection on 127.0.0.1:{self.port} within "
                    f"{timeout:.0f}s: see the log below",
                    self.log_path,
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (fast shutdown: rolls back open transactions, checkpoints, exits).

        Falls back to SIGTERM, then SIGKILL, on the postmaster if pg_ctl fails. Returns once the
        postmaster is gone. A no-op when nothing is running.
        """
        atexit.unregister(self._stop_at_exit)
        pid = self.pid
        if pid is None:
            return
        result = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "stop",
                "-m",
                "fast",
                "-w",
                "-t",
                str(max(1, int(timeout))),
            ],
            timeout=timeout + 15,
        )
        if result.returncode == 0 and not pid_alive(pid):
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if not pid_alive(pid):
                    return
                time.sleep(0.1)
        raise LocalServiceError(
            f"PostgreSQL postmaster (pid {pid}) survived SIGKILL: check `ps -p {pid}` and kill it manually",
            self.log_path,
        )

    def _stop_quietly(self) -> None:
        try:
            self.stop(timeout=10)
        except LocalServiceError:
            pass

    def _stop_at_exit(self) -> None:
        self._stop_quietly()

    def create_database(self, name: str) -> str:
        """Create database ``name`` if it does not exist; return its connection URL."""
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
                except errors.DuplicateDatabase:
                    pass  # created concurrently by another caller: same outcome
        return self.database_url(name)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
