"""A local stand-in for Stripe's GET /v1/events: serves recorded events as Stripe list objects
(newest first, `limit`, `starting_after`, `created[gte]`, `has_more`), checks the API key, can be
scripted to answer a given request with an error (429 + Retry-After, 500 ...), and records every
request it received. The stripe library is pointed at it with base_addresses={"api": url}."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.stripe_fixtures import fixture_bytes

API_KEY = "sk_test_revstream_backfill_key"


@dataclass
class RecordedPages:
    events: list[dict[str, Any]]
    # request number (1-based) -> (status, headers, body): answered instead of the page
    script: dict[int, tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, authorization: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append(query)
            number = len(self.requests)
        if authorization != f"Bearer {API_KEY}":
            return (
                401,
                {},
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
            )
        if number in self.script:
            return self.script[number]
        if url.path != "/v1/events":
            return (
                404,
                {},
                {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}},
            )
        newest_first = sorted(self.events, key=lambda e: (e["created"], e["id"]), reverse=True)
        if "created[gte]" in query:
            newest_first = [e for e in newest_first if e["created"] >= int(query["created[gte]"])]
        start = 0
        if "starting_after" in query:
            start = [e["id"] for e in newest_first].index(query["starting_after"]) + 1
        limit = int(query.get("limit", 10))
        page = newest_first[start : start + limit]
        body = {
            "object": "list",
            "url": "/v1/events",
            "has_more": start + limit < len(newest_first),
            "data": page,
        }
        return 200, {"Request-Id": f"req_{number}"}, body


@contextmanager
def stripe_api(pages: RecordedPages) -> Iterator[str]:
    """Serve `pages` on 127.0.0.1; yields the base URL. Stops the server on exit."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status, headers, body = pages.answer(self.path, self.headers.get("Authorization", ""))
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# Published events with known money (see tests/integration/test_stripe_end_to_end.py): each gets a
# unique id and its own `created` second so the list order is fixed.
BACKFILL_FIXTURES = [
    "stripe-ruby-mock/charge.succeeded__1.json",  # pi_0*24: 2000 usd
    "stripe-ruby-mock/payment_intent.succeeded__1.json",  # the same payment: counted once
    "stripe-ruby-mock/charge.refunded__1.json",  # refund 100 usd
    "stripe-ruby-mock/payment_intent.succeeded__2.json",  # 900 eur
    "stripe-sync-engine/charge.succeeded__1.json",  # 3000 usd
    "stripe-sync-engine/charge.refunded__1.json",  # refund 2500 usd
    "stripe_event/charge.succeeded__1.json",  # 3279 usd (2012 shape)
    "stripe-sync-engine/checkout.session.completed__1.json",  # LIVE 999 eur + an order
    "stripe-ruby-mock/customer.subscription.created__1.json",  # not revenue
]
EXPECTED_TEST = {
    "eur": {"gross": 900, "refunds": 0, "net": 900},
    "usd": {"gross": 8279, "refunds": 2600, "net": 5679},
}
EXPECTED_LIVE = {"eur": {"gross": 999, "refunds": 0, "net": 999}}
FIRST_CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z


def backfill_events() -> list[dict[str, Any]]:
    events = []
    for index, name in enumerate(BACKFILL_FIXTURES):
        raw = fixture_bytes(name)
        event_id = json.loads(raw)["id"]
        event = json.loads(raw.replace(event_id.encode(), f"{event_id}_bf{index}".encode()))
        event["created"] = FIRST_CREATED + index
        events.append(event)
    return events
