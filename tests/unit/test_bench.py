"""The benchmark's pure parts and its load generator against the bare baseline server."""

import json
import os
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from ingest.stripe_webhook import read_event, verify_signature
from processors.revenue.stripe_events import derive_stripe_event
from revstream.bench import events
from revstream.bench.loadgen import _response_length, run_load
from revstream.bench.observe import cpu_seconds, cpu_us_per_event
from revstream.bench.run import percentile
from revstream.localservices import free_port


def test_plan_has_the_asked_duplicates_and_every_event() -> None:
    plan = events.plan("r1", 1000, 0.1, shuffle=True)
    assert plan.unique == 900 and len(plan.order) == 1000
    assert set(plan.order) == set(range(900))
    assert sum(n - 1 for n in Counter(plan.order).values()) == 100
    assert events.plan("r1", 1000, 0.1, shuffle=True).order == plan.order  # deterministic
    assert events.plan("r1", 10, 0.0, shuffle=False).order == list(range(10))
    with pytest.raises(ValueError):
        events.plan("r1", 10, 1.0, shuffle=False)


def test_requests_verify_and_derive_like_real_webhooks() -> None:
    now = time.time()
    (request,) = events.signed_requests(
        events.plan("r2", 1, 0, False), "h", "/webhooks/stripe", "whsec_s", now
    )
    head, _, body = request.partition(b"\r\n\r\n")
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    assert int(headers["Content-Length"]) == len(body)
    verify_signature(body, headers["Stripe-Signature"], ["whsec_s"], 300, now)  # raises if wrong
    facts = read_event(body)
    assert facts.event_id == events.event_id("r2", 0) and facts.livemode is False
    _, (revenue, _) = derive_stripe_event(json.loads(body), "default")
    (payment,) = revenue
    assert payment.payment_key == events.payment_key("r2", 0)
    assert (payment.amount_minor, payment.currency, payment.counted) == (events.AMOUNT_MINOR, "xts", True)


def test_response_length_and_percentile() -> None:
    response = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
    assert _response_length(response[:10]) is None
    assert _response_length(response + b"HTTP/1.1") == len(response)
    assert _response_length(b"HTTP/1.1 204 No Content\r\n\r\n") == 27
    assert percentile([], 50) is None
    assert percentile([float(v) for v in range(1, 101)], 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_load_generator_against_the_baseline_server() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "revstream.bench.baseline", str(port)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, "baseline did not start"
                time.sleep(0.1)
        requests = events.signed_requests(
            events.plan("r3", 300, 0.1, True), "h", "/webhooks/stripe", "whsec_s"
        )
        result = run_load(requests, "127.0.0.1", port, workers=2, connections=8)
        assert list(result.status) == [200] * 300
        assert all(a >= s > 0 for a, s in zip(result.acked, result.sent, strict=True))
        assert result.generator_cpu_s > 0
        missing = run_load(requests[:5], "127.0.0.1", port, workers=1, connections=2)
        assert list(missing.status) == [200] * 5
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_cpu_per_event_counts_a_process_and_its_children() -> None:
    before = cpu_seconds({"me": os.getpid()})
    # A child that burns CPU while alive: counted in its parent's tree.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()\nwhile time.process_time()-t<0.6: pass\ninput()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while cpu_seconds({"me": os.getpid()})["me"] - before["me"] < 0.5:
            assert time.monotonic() < deadline, "the child's CPU time never showed in its parent's tree"
            time.sleep(0.05)
        after = cpu_seconds({"me": os.getpid()})
    finally:
        child.communicate(b"\n", timeout=10)
    used = cpu_us_per_event(before, after, events=1000)
    assert used["me"] >= 500 and used["total"] == used["me"]  # >= 0.5 s over 1,000 events
    assert cpu_us_per_event({}, {"a": 0.002, "b": 0.001}, events=1) == {
        "a": 2000.0,
        "b": 1000.0,
        "total": 3000.0,
    }
