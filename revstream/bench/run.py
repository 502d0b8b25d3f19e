"""`revstream bench`: the phases and the report.

1. The pipeline: the one at --url, or the embedded default started here in a temporary
   directory (Kafka, PostgreSQL, ingest + analytics + processor + sink-postgres, as `revstream up`).
2. --backlog N: N raw envelopes produced straight into Kafka, then the time until the processor
   and both sinks have committed all of them (embedded: produced before the processor starts).
3. Baseline: the same server stack answering 200 with no work, hit by the same generator; its
   rate bounds ingest's, and the generator's own CPU per request gives the generator's ceiling.
4. Webhooks: --count signed requests (--duplicates re-deliveries, shuffled) at --rate (0 = as
   fast as possible); acknowledgement latency per request; freshness = 2xx -> visible in the
   totals API; then wait until every accepted event is in ClickHouse and PostgreSQL.
5. Correctness: every acknowledged event exactly once in both stores (lost = 0, double = 0).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from revstream.bench import events
from revstream.bench.args import add_parser
from revstream.bench.backlog import produce_backlog
from revstream.bench.events import WEBHOOK_PATH
from revstream.bench.ingest_only import bench_ingest_only, render_ingest_only
from revstream.bench.loadgen import LoadResult, run_load
from revstream.bench.observe import (
    Sampler,
    TotalsProbe,
    cpu_seconds,
    cpu_us_per_event,
    find_service_pids,
    ledger_count,
    ledger_payments,
    peak_rss_mb,
)
from revstream.bench.stack import BenchStack
from revstream.bench.stats import ms, percentile
from revstream.localservices import free_port
from revstream.wiring import GROUP_PROCESSOR, GROUP_SINK_CLICKHOUSE, GROUP_SINK_POSTGRES
from schemas.topics import Topics

# During a backlog drain the totals API is read every 10th sample (2 s), offsets every 0.2 s: its
# query reads every fact, and at a million facts polling it 5 times a second slowed the drain.
DRAIN_PROBE_EVERY = 10


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    url: str
    api_url: str
    secret: str
    database_url: str | None
    bootstrap: str | None
    topics: Topics
    stack: BenchStack | None

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        prefix = self.topics.prefix
        return {
            prefix + GROUP_PROCESSOR: (self.topics.raw,),
            prefix + GROUP_SINK_POSTGRES: (self.topics.events,),
            prefix + GROUP_SINK_CLICKHOUSE: (self.topics.events,),
        }


def _progress(label: str) -> Any:
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1 or done == total:
            last[0] = now
            say(f"{label} {done}/{total}")

    return show


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def _stage_rates(sampler: Sampler) -> dict[str, float | None]:
    """Messages/s each group committed, from its first progress to having committed everything."""
    rates: dict[str, float | None] = {}
    for group, series in sampler.samples.consumed.items():
        rates[group] = None
        if len(series) < 2:
            continue
        base = series[0][1]
        moved = next((i for i, (_, consumed, _) in enumerate(series) if consumed > base), None)
        if moved is None:
            continue
        top = max(consumed for _, consumed, _ in series)
        end = next(i for i, (_, consumed, _) in enumerate(series) if consumed == top)
        span = series[end][0] - series[moved - 1][0]
        rates[group] = round((top - base) / span, 1) if span > 0 else None
    return rates


def _wait_caught_up(
    sampler: Sampler,
    target: Target,
    expected_visible: int,
    runs: list[str],
    expected_pg: int,
    timeout_s: float,
) -> bool:
    deadline = time.monotonic() + timeout_s
    last_note = 0.0
    while time.monotonic() < deadline:
        visible = sampler.visible_now()
        lags = sampler.lag_now()
        drained = not lags or all(lag == 0 for lag in lags.values())
        note_due = time.monotonic() - last_note >= 2
        # Counting the bench's ledger rows scans them: done once the consumers are drained or for
        # the progress line, not four times a second against the database being measured.
        in_pg = -1
        if target.database_url is None:
            in_pg = expected_pg
        elif drained or note_due:
            in_pg = ledger_count(target.database_url, runs)
        if visible >= expected_visible and in_pg >= expected_pg and drained:
            return True
        if note_due:
            last_note = time.monotonic()
            say(
                f"waiting for the pipeline: ClickHouse {visible}/{expected_visible}, PostgreSQL "
                f"{in_pg}/{expected_pg}, lag {sum(lags.values()) if lags else 'n/a'}"
            )
        time.sleep(0.25)
    return False


def _pids(target: Target) -> dict[str, int]:
    """The pipeline's processes: the embedded stack's (Kafka and PostgreSQL included), or the
    `revstream run` services found on this machine for --url."""
    return target.stack.pids() if target.stack is not None else find_service_pids()


def _start_sampler(target: Target, probe: TotalsProbe, probe_every: int = 1) -> Sampler:
    groups = target.groups if target.bootstrap else {}
    sampler = Sampler(probe, probe.gross(), target.bootstrap, groups, probe_every=probe_every)
    sampler.start()
    return sampler


def _baseline(args: argparse.Namespace, requests: list[bytes]) -> tuple[float, LoadResult]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "revstream.bench.baseline", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the baseline server did not start") from None
                time.sleep(0.1)
        result = run_load(
            requests,
            "127.0.0.1",
            port,
            workers=args.workers,
            connections=args.connections,
            on_progress=_progress("baseline"),
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    return len(requests) / max(1e-9, result.finished - result.started), result


def _target(args: argparse.Namespace) -> Target:
    topics = Topics(prefix=os.environ.get("REVSTREAM_TOPIC_PREFIX", ""))
    if args.url:
        secret = args.secret or os.environ.get("STRIPE_WEBHOOK_SECRET", "").split(",")[0].strip()
        if not secret:
            raise SystemExit(
                "bench: --url needs --secret (or STRIPE_WEBHOOK_SECRET): the endpoint's whsec_..."
            )
        return Target(
            url=args.url.rstrip("/"),
            api_url=(args.api_url or args.url).rstrip("/"),
            secret=secret,
            database_url=args.database_url or os.environ.get("DATABASE_URL"),
            bootstrap=args.kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            topics=topics,
            stack=None,
        )
    secret = f"whsec_bench_{secrets.token_hex(16)}"
    stack = BenchStack(secret, say=say)
    return Target(stack.url, stack.url, secret, None, None, Topics(), stack)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    run = secrets.token_hex(4)
    target = _target(args)
    stack = target.stack
    report: dict[str, Any] = {"run": run, "count": args.count, "rate": args.rate or None}
    failed = True
    running: list[Sampler] = []
    try:
        if stack is not None:
            stack.start_backing()
            target.database_url, target.bootstrap = stack.database_url, stack.bootstrap
        runs: list[str] = []
        expected_visible = 0
        probe_extra = os.environ.get("REVSTREAM_API_TOKEN")
        # The bench currency's gross before this run (an embedded run starts from nothing).
        gross_origin = TotalsProbe(target.api_url, probe_extra).gross() if stack is None else 0

        # --- backlog: produce, then time the drain -----------------------------------------------
        if args.backlog:
            if not target.bootstrap:
                raise SystemExit("bench: --backlog needs --kafka (or KAFKA_BOOTSTRAP_SERVERS) with --url")
            backlog_run = run + "b"
            produce_s = produce_backlog(
                target.bootstrap, target.topics.raw, backlog_run, args.backlog, _progress("backlog produced")
            )
            report["backlog"] = args.backlog
            report["backlog_produce_per_s"] = round(args.backlog / produce_s, 1)
            if stack is not None:
                stack.start("ingest", "analytics", "sink-postgres")
            probe = TotalsProbe(target.api_url, probe_extra)
            sampler = _start_sampler(target, probe, probe_every=DRAIN_PROBE_EVERY)
            running.append(sampler)
            if stack is not None:
                time.sleep(1)  # the sinks' consumers join their groups before the processor starts
            cpu_before = cpu_seconds(_pids(target))
            if stack is not None:
                stack.start("processor")
            runs.append(backlog_run)
            expected_visible += args.backlog
            caught_up = _wait_caught_up(
                sampler, target, args.backlog, [backlog_run], args.backlog, args.timeout
            )
            report["cpu_us_per_event"] = {
                "drain": cpu_us_per_event(cpu_before, cpu_seconds(_pids(target)), args.backlog)
            }
            sampler.stop()
            rates = _stage_rates(sampler)
            report["drain_caught_up"] = caught_up
            report["drain_stage_per_s"] = rates
            processor_series = sampler.samples.consumed.get(target.topics.prefix + GROUP_PROCESSOR, [])
            start = next(
                (
                    processor_series[i - 1][0]
                    for i, s in enumerate(processor_series)
                    if i and s[1] > processor_series[0][1]
                ),
                None,
            )
            if start is None and processor_series:
                # The processor was already running (--url) and consumed the backlog before the
                # second sample: the drain started no later than the first sample.
                start = processor_series[0][0]
            ends = []
            for group in (GROUP_SINK_POSTGRES, GROUP_SINK_CLICKHOUSE):
                series = sampler.samples.consumed.get(target.topics.prefix + group, [])
                top = max((c for _, c, _ in series), default=0)
                ends.append(next((t for t, c, lag in series if c == top and lag == 0), None))
            if start is not None and all(e is not None for e in ends):
                elapsed = max(max(e for e in ends if e) - start, 1e-3)
                report["drain_per_s"] = round(args.backlog / elapsed, 1)
            else:
                report["drain_per_s"] = None
            say(f"backlog drained at {report['drain_per_s']} events/s")
        elif stack is not None:
            stack.start("ingest", "analytics", "processor", "sink-postgres")

        # --- baseline and the generator's ceiling --------------------------------------------------
        baseline_plan = events.plan(run + "z", min(args.count, args.baseline_count), 0.0, False)
        baseline_requests = events.signed_requests(baseline_plan, "127.0.0.1", WEBHOOK_PATH, target.secret)
        baseline_per_s, baseline_load = _baseline(args, baseline_requests)
        cpu_us = baseline_load.generator_cpu_s / max(1, len(baseline_requests)) * 1e6
        report["baseline_per_s"] = round(baseline_per_s, 1)
        report["generator"] = {
            "workers": args.workers,
            "connections": args.connections,
            "cpu_us_per_request": round(cpu_us, 1),
            "ceiling_per_s_per_core": round(1e6 / cpu_us, 1) if cpu_us else None,
        }
        del baseline_requests

        # --- the webhooks --------------------------------------------------------------------------
        webhook_run = run + "w"
        plan = events.plan(webhook_run, args.count, args.duplicates, args.shuffle)
        host, port = _host_port(target.url)
        requests = events.signed_requests(plan, host, WEBHOOK_PATH, target.secret)
        if args.rate and args.count / args.rate > 240:
            say(
                "warning: the run is longer than the 300 s signature tolerance allows for pre-signed requests"
            )
        probe = TotalsProbe(target.api_url, probe_extra)
        sampler = _start_sampler(target, probe)
        running.append(sampler)
        cpu_before = cpu_seconds(_pids(target))
        load = run_load(
            requests,
            host,
            port,
            workers=args.workers,
            connections=args.connections,
            rate=args.rate,
            on_progress=_progress("webhooks answered"),
        )
        del requests
        statuses = Counter(int(s) for s in load.status)
        ok = [k for k, s in enumerate(load.status) if 200 <= s < 300]
        first_ack: dict[int, float] = {}
        for k in ok:
            index = plan.order[k]
            first_ack[index] = min(first_ack.get(index, load.acked[k]), load.acked[k])
        maybe = {plan.order[k] for k, s in enumerate(load.status) if not (200 <= s < 500)} - set(first_ack)
        runs.append(webhook_run)
        caught_up = _wait_caught_up(
            sampler, target, len(first_ack), [webhook_run], len(first_ack), args.timeout
        )
        report.setdefault("cpu_us_per_event", {})["webhooks"] = cpu_us_per_event(
            cpu_before, cpu_seconds(_pids(target)), len(load.status)
        )
        sampler.stop()

        duration = max(1e-9, load.finished - load.started)
        ack_latencies = [load.acked[k] - load.sent[k] for k in ok]
        times = [t for t, _ in sampler.samples.visible]
        counts = [c for _, c in sampler.samples.visible]
        freshness = []
        for n, acked_at in enumerate(sorted(first_ack.values()), start=1):
            # the n-th acknowledged event is taken as visible when n events are (FIFO estimate)
            at = bisect_left(counts, n) if counts and counts[-1] >= n else None
            if at is not None:
                freshness.append(max(0.0, times[at] - acked_at))
        stage = _stage_rates(sampler)
        report.update(
            {
                "requests": len(load.status),
                "unique_events": plan.unique,
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "accepted_per_s": round(len(ok) / duration, 1),
                "ingest_to_baseline": round(len(ok) / duration / baseline_per_s, 3)
                if baseline_per_s
                else None,
                "ack_p50_ms": ms(percentile(ack_latencies, 50)),
                "ack_p95_ms": ms(percentile(ack_latencies, 95)),
                "ack_p99_ms": ms(percentile(ack_latencies, 99)),
                "generator_late_ms": ms(load.late_s),
                "e2e_p50_ms": ms(percentile(freshness, 50)),
                "e2e_p99_ms": ms(percentile(freshness, 99)),
                "caught_up": caught_up,
                # The totals API reads every fact: its latency grows with the table (README).
                "totals_api_p50_ms": ms(percentile(sampler.samples.probe_s, 50)),
                "totals_api_p99_ms": ms(percentile(sampler.samples.probe_s, 99)),
                "processor_per_s": stage.get(target.topics.prefix + GROUP_PROCESSOR),
                "sink_postgres_per_s": stage.get(target.topics.prefix + GROUP_SINK_POSTGRES),
                "sink_clickhouse_per_s": stage.get(target.topics.prefix + GROUP_SINK_CLICKHOUSE),
            }
        )
        report.setdefault("drain_per_s", None)

        # --- correctness -----------------------------------------------------------------------------
        expected_visible += len(first_ack)
        final_probe = TotalsProbe(target.api_url, probe_extra)
        lost, double = 0, 0
        if target.database_url:
            expected_keys = {events.payment_key(webhook_run, i) for i in first_ack}
            maybe_keys = {events.payment_key(webhook_run, i) for i in maybe}
            if args.backlog:
                expected_keys |= {events.payment_key(run + "b", i) for i in range(args.backlog)}
            present = ledger_payments(target.database_url, runs)
            lost = len(expected_keys - present.keys())
            double = len(present.keys() - expected_keys - maybe_keys)
            double += sum(1 for amount in present.values() if amount != events.AMOUNT_MINOR)
            report["postgres_checked"] = True
        else:
            report["postgres_checked"] = False
        # ClickHouse through the totals API: the bench runs' share of the xts gross.
        visible = (final_probe.gross() - gross_origin) // events.AMOUNT_MINOR
        lost = max(lost, expected_visible - visible)
        double = max(double, visible - expected_visible - len(maybe))
        report["lost"] = max(0, lost)
        report["double_counted"] = max(0, double)

        # --- memory ----------------------------------------------------------------------------------
        report["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in sorted(_pids(target).items())}
        report["machine"] = {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}
        failed = report["lost"] != 0 or report["double_counted"] != 0 or not caught_up
        return report
    finally:
        for sampler in running:
            sampler.stop()  # before the broker it reads goes away (stop is idempotent)
        if stack is not None:
            say("stopping the embedded pipeline...")
            stack.stop(keep=args.keep or failed)


def _fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,}{unit}" if isinstance(value, int | float) else str(value)


def render(report: dict[str, Any]) -> str:
    gen = report["generator"]
    rss = ", ".join(f"{name} {_fmt(mb, ' MB')}" for name, mb in report["peak_rss_mb"].items())
    lines = [
        f"revstream bench (run {report['run']}, {report['machine']['cpus']} CPUs, load {report['machine']['loadavg_1m']})",
        f"  webhooks           {report['requests']:,} requests ({report['unique_events']:,} distinct events), "
        f"rate {_fmt(report['rate'], '/s') if report['rate'] else 'unlimited'}, statuses {report['statuses']}",
        f"  accepted           {_fmt(report['accepted_per_s'])} requests/s",
        f"  baseline           {_fmt(report['baseline_per_s'])} requests/s (same server stack, 200, no work)"
        f"  -> ingest/baseline {_fmt(report['ingest_to_baseline'])}",
        f"  generator          {gen['cpu_us_per_request']} us CPU per request = ceiling "
        f"{_fmt(gen['ceiling_per_s_per_core'])} requests/s per core ({gen['workers']} workers, "
        f"{gen['connections']} connections); most late start {_fmt(report['generator_late_ms'], ' ms')}",
        f"  ack latency        p50 {_fmt(report['ack_p50_ms'], ' ms')}  p95 {_fmt(report['ack_p95_ms'], ' ms')}  "
        f"p99 {_fmt(report['ack_p99_ms'], ' ms')}",
        f"  freshness (2xx -> totals API)  p50 {_fmt(report['e2e_p50_ms'], ' ms')}  p99 {_fmt(report['e2e_p99_ms'], ' ms')}"
        f"  (a totals API call took p50 {_fmt(report.get('totals_api_p50_ms'), ' ms')}, "
        f"p99 {_fmt(report.get('totals_api_p99_ms'), ' ms')})",
        f"  throughput         processor {_fmt(report['processor_per_s'], '/s')}, sink-postgres "
        f"{_fmt(report['sink_postgres_per_s'], '/s')}, sink-clickhouse {_fmt(report['sink_clickhouse_per_s'], '/s')}",
    ]
    if report.get("backlog"):
        rates = report["drain_stage_per_s"]
        lines.append(
            f"  backlog            {report['backlog']:,} events drained at {_fmt(report['drain_per_s'], ' events/s')} "
            f"(per group: {', '.join(f'{g} {_fmt(r)}' for g, r in rates.items())}); produced at "
            f"{_fmt(report['backlog_produce_per_s'], '/s')}"
        )
    for phase, label in (("webhooks", "per webhook"), ("drain", "per backlog event")):
        used = report.get("cpu_us_per_event", {}).get(phase)
        if used:
            parts = ", ".join(f"{name} {us:,}" for name, us in used.items() if name != "total")
            lines.append(f"  CPU {label:<17} {used['total']:,} us in all: {parts}")
    lines += [
        f"  peak RSS           {rss}",
        f"  correctness        lost {report['lost']}, double counted {report['double_counted']}"
        f" (PostgreSQL {'checked' if report['postgres_checked'] else 'not checked: no DATABASE_URL'}, "
        f"ClickHouse via the totals API){'' if report['caught_up'] else '  [TIMED OUT waiting for the pipeline]'}",
    ]
    return "\n".join(lines)


def bench_main(args: argparse.Namespace) -> int:
    try:
        if args.ingest_only:
            report = bench_ingest_only(args, say, _baseline, _progress)
        else:
            report = bench(args)
    except KeyboardInterrupt:
        say("interrupted: nothing was reported (the embedded pipeline, if any, was stopped)")
        return 130
    shown = render_ingest_only(report) if args.ingest_only else render(report)
    print(json.dumps(report, indent=2) if args.json else shown, flush=True)
    ok = report["lost"] == 0 and report["double_counted"] == 0 and report["caught_up"]
    return 0 if ok else 1


def run_from_cli(argv: list[str]) -> int:  # pragma: no cover - convenience for python -m
    parser = argparse.ArgumentParser(prog="revstream")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return bench_main(parser.parse_args(["bench", *argv]))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(run_from_cli(sys.argv[1:]))
