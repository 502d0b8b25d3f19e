"""Local processes (Kafka, PostgreSQL) for the embedded default and tests."""

from __future__ import annotations

import errno
import os
import socket
from collections import deque
from pathlib import Path

__all__ = ["LocalServiceError", "free_port", "log_tail", "pid_alive", "port_in_use"]

LOG_TAIL_LINES = 40


class LocalServiceError(Exception):
    """A local service could not be prepared, started or stopped.

    The message says what failed and what to do next; when ``log_path`` is given, the last
    ~40 lines of that service log are appended so the cause is visible without opening the file.
    """

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        if log_path is not None:
            tail = log_tail(log_path)
            message = (
                f"{message}\n--- last lines of {log_path} ---\n{tail}"
                if tail
                else (f"{message}\n(log {log_path} is empty or missing)")
            )
        super().__init__(message)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``path`` ("" if it cannot be read)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something already listens on (or otherwise holds) ``host:port``.

    SO_REUSEADDR is set so sockets lingering in TIME_WAIT from a previous run of the same service
    do not count as "in use"; a live listener still makes the bind fail on Linux.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (an unreaped zombie has already exited)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # Field 3 (after the parenthesised comm, which may itself contain spaces) is the state.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def process_cmdline(pid: int) -> bytes:
    """The NUL-separated command line of `pid` ("" when it is gone): tells our process from a reused pid."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
