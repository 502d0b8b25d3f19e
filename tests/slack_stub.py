"""A local HTTP server standing in for a Slack incoming webhook: it records every POST and
answers from a script (e.g. one 429 with Retry-After, then 200 "ok")."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Post:
    path: str
    received_at: float  # time.monotonic() in this process
    body: dict[str, Any]
    answered: int


@dataclass
class SlackStub:
    url: str
    posts: list[Post] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # answers before the 200s

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Post]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.posts) >= count:
                return list(self.posts)
            time.sleep(0.1)
        raise AssertionError(f"expected {count} posts, got {len(self.posts)}")


@contextmanager
def slack_stub() -> Iterator[SlackStub]:
    lock = threading.Lock()
    stub: SlackStub

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                status, headers = stub.script.pop(0) if stub.script else (200, {})
                stub.posts.append(Post(self.path, time.monotonic(), body, status))
            payload = b"ok" if status == 200 else b"rate_limited" if status == 429 else b"error"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub = SlackStub(url=f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/not-a-real-secret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
