"""A load generator that is not the bottleneck: pre-built requests, raw keep-alive sockets, one
selector loop per worker process, several worker processes.

A single asyncio + httpx client tops out near 800 requests/s on a 2-core machine; most of that
is the client library. Here a request is one `sendall` of pre-signed bytes and an answer is
parsed just far enough to find its status and Content-Length, so a worker spends a few tens of
microseconds per request. Its own CPU time is measured and reported (the generator's ceiling).

Requests are spread round-robin over the workers. `rate` > 0 paces them open-loop (request k is
due at start + k / rate; a request that finds no idle connection waits, and that lateness is
reported); `rate` = 0 sends as fast as the connections come back (closed loop).
"""

from __future__ import annotations

import multiprocessing
import resource
import selectors
import socket
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

STATUS_CONNECTION_ERROR = 0


@dataclass
class LoadResult:
    """Per request (in the order given): when it was sent and answered (time.monotonic) and the status."""

    sent: array[float]
    acked: array[float]
    status: array[int]
    late_s: float  # the most any paced request started after it was due
    generator_cpu_s: float  # user + system CPU of all workers

    @property
    def started(self) -> float:
        return min(self.sent) if len(self.sent) else 0.0

    @property
    def finished(self) -> float:
        return max(self.acked) if len(self.acked) else 0.0


class _Conn:
    __slots__ = ("sock", "index", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.index = -1
        self.buf = b""


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _response_length(buf: bytes) -> int | None:
    """Total length of the first response in `buf` once its head is complete, else None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].lower()
    at = head.find(b"content-length:")
    length = 0
    if at >= 0:
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end >= 0 else None].strip())
    return head_end + 4 + length


def _worker(
    requests: list[bytes],
    first: int,
    stride: int,
    host: str,
    port: int,
    connections: int,
    rate: float,
    start_at: float,
    progress: Any,
    out: Connection,
) -> None:
    mine = requests[first::stride]
    n = len(mine)
    sent, acked = array("d", bytes(8 * n)), array("d", bytes(8 * n))
    status = array("h", bytes(2 * n))
    selector = selectors.DefaultSelector()
    idle: deque[_Conn] = deque()
    for _ in range(max(1, min(connections, n))):
        conn = _Conn(_connect(host, port))
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        idle.append(conn)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    while time.monotonic() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.monotonic())))
    interval = stride / rate if rate > 0 else 0.0
    offset = first / rate if rate > 0 else 0.0
    next_j, done, late = 0, 0, 0.0

    def finish(conn: _Conn, code: int) -> None:
        nonlocal done
        acked[conn.index] = time.monotonic()
        status[conn.index] = code
        conn.index = -1
        done += 1
        if done & 127 == 0:
            progress.value = done

    def reconnect(conn: _Conn) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()
        conn.sock, conn.buf = _connect(host, port), b""
        selector.register(conn.sock, selectors.EVENT_READ, conn)

    while done < n:
        now = time.monotonic()
        while idle and next_j < n:
            due = start_at + offset + next_j * interval
            if rate > 0 and due > now:
                break
            late = max(late, now - due) if rate > 0 else 0.0
            conn = idle.popleft()
            conn.index = next_j
            sent[next_j] = now
            next_j += 1
            try:
                conn.sock.sendall(mine[conn.index])
            except OSError:
                finish(conn, STATUS_CONNECTION_ERROR)
                reconnect(conn)
                idle.append(conn)
        timeout = None
        if idle and next_j < n and rate > 0:
            timeout = max(0.0, start_at + offset + next_j * interval - time.monotonic())
        for key, _ in selector.select(timeout):
            conn = key.data
            try:
                chunk = conn.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:  # the server closed the connection
                if conn.index >= 0:
                    finish(conn, STATUS_CONNECTION_ERROR)
                reconnect(conn)
                idle.append(conn)
                continue
            conn.buf += chunk
            total = _response_length(conn.buf)
            if total is None or len(conn.buf) < total:
                continue
            code = int(conn.buf[9:12])
            conn.buf = conn.buf[total:]
            finish(conn, code)
            idle.append(conn)
    progress.value = done
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    for conn in idle:
        conn.sock.close()
    out.send((sent.tobytes(), acked.tobytes(), status.tobytes(), late, cpu))
    out.close()


def run_load(
    requests: list[bytes],
    host: str,
    port: int,
    *,
    workers: int = 2,
    connections: int = 32,
    rate: float = 0.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Send every request once over `connections` keep-alive connections spread over `workers`
    processes; return per-request timings in the order given."""
    n = len(requests)
    workers = max(1, min(workers, n)) if n else 1
    ctx = multiprocessing.get_context("fork")  # the workers inherit the pre-built requests, no copy
    start_at = time.monotonic() + 1.0
    procs, pipes, counters = [], [], []
    for w in range(workers):
        receive, send = ctx.Pipe(duplex=False)
        counter = ctx.Value("q", 0, lock=False)
        share = connections // workers + (1 if w < connections % workers else 0)
        proc = ctx.Process(
            target=_worker,
            args=(requests, w, workers, host, port, max(1, share), rate, start_at, counter, send),
            daemon=True,
        )
        proc.start()
        send.close()
        procs.append(proc)
        pipes.append(receive)
        counters.append(counter)
    results: list[Any] = [None] * workers
    while any(r is None for r in results):
        for w, pipe in enumerate(pipes):
            if results[w] is None and pipe.poll(0.5):
                results[w] = pipe.recv()
        if on_progress is not None:
            on_progress(sum(c.value for c in counters), n)
        for w, proc in enumerate(procs):
            if results[w] is None and not proc.is_alive() and not pipes[w].poll(0):
                raise RuntimeError(f"load generator worker {w} died (exit code {proc.exitcode})")
    for proc in procs:
        proc.join()
    sent, acked, status = array("d", bytes(8 * n)), array("d", bytes(8 * n)), array("h", bytes(2 * n))
    late, cpu = 0.0, 0.0
    for w, (s_bytes, a_bytes, st_bytes, w_late, w_cpu) in enumerate(results):
        s, a, st = array("d"), array("d"), array("h")
        s.frombytes(s_bytes)
        a.frombytes(a_bytes)
        st.frombytes(st_bytes)
        sent[w::workers], acked[w::workers], status[w::workers] = s, a, st
        late, cpu = max(late, w_late), cpu + w_cpu
    return LoadResult(sent=sent, acked=acked, status=status, late_s=late, generator_cpu_s=cpu)
