"""`revstream bench --ingest-only`: the HTTP edge on its own.

A local Kafka and one `revstream run ingest` (no consumers, PostgreSQL or ClickHouse), started in
a temporary directory on free ports, so the figures are ingest's own ceiling on this machine:
accepted requests/s against the same-stack baseline, acknowledgement latency, and the CPU each
request costs ingest and the broker. Correctness: the raw topic holds exactly one record per
acknowledged request (ingest does not deduplicate; the processor does), so lost = acknowledged
but missing, double = more records than acknowledgements.

A warm-up of WARMUP requests runs first and is not measured (connections, caches, the broker's
JIT), but its records are counted in the correctness check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from revstream.bench import events
from revstream.bench.events import WEBHOOK_PATH
from revstream.bench.loadgen import run_load
from revstream.bench.observe import cpu_seconds, cpu_us_per_event, peak_rss_mb
from revstream.bench.stats import ms, percentile
from revstream.consumer_lag import OffsetReader
from revstream.localservices import free_port
from revstream.localservices.kafka import LocalKafka, create_topics, ensure_kafka_jars
from schemas.topics import Topics

WARMUP = 2_000


async def _records_in(bootstrap: str, topic: str) -> int:
    reader = OffsetReader(bootstrap)
    await reader.start()
    try:
        bounds = await reader.bounds(await reader.partitions(topic))
        return sum(end - begin for begin, end in bounds.values())
    finally:
        await reader.stop()


def _start_ingest(data_dir: Path, bootstrap: str, secret: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env.update(
        STRIPE_WEBHOOK_SECRET=secret,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        HOST="127.0.0.1",
        PORT=str(port),
        REVSTREAM_DATA_DIR=str(data_dir),
    )
    log = open(data_dir / "ingest.log", "ab")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "revstream", "run", "ingest"], env=env, stdout=log, stderr=log
        )
    finally:
        log.close()


def _wait_healthy(url: str, child: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if child.poll() is not None:
            raise SystemExit(f"bench: ingest exited with {child.returncode}: see {log}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: ingest did not answer /health in {timeout_s:.0f} s: see {log}")
        time.sleep(0.2)


def bench_ingest_only(args: argparse.Namespace, say: Any, baseline: Any, progress: Any) -> dict[str, Any]:
    """Run the phases; `baseline(args, requests)` and `progress(label)` come from revstream.bench.run."""
    run = secrets.token_hex(4)
    secret = f"whsec_bench_{secrets.token_hex(16)}"
    data_dir = Path(tempfile.mkdtemp(prefix="revstream-bench-ingest-"))
    topic = Topics().raw
    kafka: LocalKafka | None = None
    ingest: subprocess.Popen[bytes] | None = None
    failed = True
    try:
        ensure_kafka_jars(progress=say)
        kafka = LocalKafka(data_dir / "kafka", port=free_port(), controller_port=free_port())
        say("starting Kafka...")
        kafka.start()
        create_topics(kafka.bootstrap_servers, Topics().all())
        port = free_port()
        ingest = _start_ingest(data_dir, kafka.bootstrap_servers, secret, port)
        _wait_healthy(f"http://127.0.0.1:{port}", ingest, data_dir / "ingest.log")

        warm = events.signed_requests(
            events.plan(run + "u", WARMUP, 0.0, False), "127.0.0.1", WEBHOOK_PATH, secret
        )
        warmup = run_load(warm, "127.0.0.1", port, workers=args.workers, connections=args.connections)
        acknowledged = sum(1 for s in warmup.status if 200 <= s < 300)

        baseline_plan = events.plan(run + "z", min(args.count, args.baseline_count), 0.0, False)
        baseline_per_s, baseline_load = baseline(
            args, events.signed_requests(baseline_plan, "127.0.0.1", WEBHOOK_PATH, secret)
        )
        cpu_us = baseline_load.generator_cpu_s / max(1, len(baseline_plan.order)) * 1e6

        requests = events.signed_requests(
            events.plan(run + "w", args.count, args.duplicates, args.shuffle),
            "127.0.0.1",
            WEBHOOK_PATH,
            secret,
        )
        pids = {"ingest": ingest.pid, "kafka": kafka.pid or 0}
        before = cpu_seconds(pids)
        load = run_load(
            requests,
            "127.0.0.1",
            port,
            workers=args.workers,
            connections=args.connections,
            rate=args.rate,
            on_progress=progress("webhooks answered"),
        )
        used = cpu_us_per_event(before, cpu_seconds(pids), len(requests))
        ok = [k for k, s in enumerate(load.status) if 200 <= s < 300]
        unanswered = sum(1 for s in load.status if not 200 <= s < 500)  # may or may not be in Kafka
        acknowledged += len(ok)
        in_topic = asyncio.run(_records_in(kafka.bootstrap_servers, topic))
        duration = max(1e-9, load.finished - load.started)
        statuses: dict[str, int] = {}
        for s in load.status:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
        ack = [load.acked[k] - load.sent[k] for k in ok]
        report = {
            "mode": "ingest-only",
            "run": run,
            "count": args.count,
            "rate": args.rate or None,
            "requests": len(requests),
            "statuses": dict(sorted(statuses.items())),
            "accepted_per_s": round(len(ok) / duration, 1),
            "baseline_per_s": round(baseline_per_s, 1),
            "ingest_to_baseline": round(len(ok) / duration / baseline_per_s, 3) if baseline_per_s else None,
            "generator": {
                "workers": args.workers,
                "connections": args.connections,
                "cpu_us_per_request": round(cpu_us, 1),
                "ceiling_per_s_per_core": round(1e6 / cpu_us, 1) if cpu_us else None,
            },
            "ack_p50_ms": ms(percentile(ack, 50)),
            "ack_p95_ms": ms(percentile(ack, 95)),
            "ack_p99_ms": ms(percentile(ack, 99)),
            "generator_late_ms": ms(load.late_s),
            "e2e_p50_ms": None,
            "e2e_p99_ms": None,
            "drain_per_s": None,
            "cpu_us_per_event": {"webhooks": used},
            "lost": max(0, acknowledged - in_topic),
            "double_counted": max(0, in_topic - acknowledged - unanswered),
            "caught_up": True,
            "peak_rss_mb": {name: peak_rss_mb(pid) for name, pid in sorted(pids.items())},
            "machine": {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)},
        }
        failed = report["lost"] != 0 or report["double_counted"] != 0
        return report
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(timeout=20)
        if kafka is not None:
            kafka.stop()
        if args.keep or failed:
            say(f"data and logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def render_ingest_only(report: dict[str, Any]) -> str:
    gen = report["generator"]
    used = report["cpu_us_per_event"]["webhooks"]
    rss = ", ".join(f"{name} {mb} MB" for name, mb in report["peak_rss_mb"].items())
    rate = f"{report['rate']:,}/s" if report["rate"] else "unlimited"
    return "\n".join(
        [
            f"revstream bench --ingest-only (run {report['run']}, {report['machine']['cpus']} CPUs, "
            f"load {report['machine']['loadavg_1m']}): Kafka + ingest, no consumers",
            f"  webhooks           {report['requests']:,} requests, rate {rate}, statuses {report['statuses']}",
            f"  accepted           {report['accepted_per_s']:,} requests/s",
            f"  baseline           {report['baseline_per_s']:,} requests/s (same server stack, 200, no work)"
            f"  -> ingest/baseline {report['ingest_to_baseline']}",
            f"  generator          {gen['cpu_us_per_request']} us CPU per request ({gen['workers']} workers, "
            f"{gen['connections']} connections); most late start {report['generator_late_ms']} ms",
            f"  ack latency        p50 {report['ack_p50_ms']} ms  p95 {report['ack_p95_ms']} ms  "
            f"p99 {report['ack_p99_ms']} ms",
            f"  CPU per webhook    ingest {used['ingest']} us, kafka {used['kafka']} us",
            f"  peak RSS           {rss}",
            f"  correctness        lost {report['lost']}, double counted {report['double_counted']} "
            "(every 2xx once in revenue.raw.v1)",
        ]
    )
