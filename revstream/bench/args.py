"""The `revstream bench` arguments, kept apart so `revstream --help` loads nothing heavy."""

from typing import Any


def add_parser(commands: Any) -> None:
    """The `bench` subcommand's arguments (called from revstream.cli)."""
    bench = commands.add_parser(
        "bench",
        help="load-test ingest and the pipeline; report throughput, latency, freshness, memory, correctness",
    )
    bench.add_argument("--count", type=int, default=20_000, help="webhook requests to send (default 20000)")
    bench.add_argument("--rate", type=float, default=0, help="requests/s, 0 = as fast as possible (default)")
    bench.add_argument("--duplicates", type=float, default=0.1, help="share of re-deliveries (default 0.1)")
    bench.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="send events in order")
    bench.add_argument(
        "--backlog", type=int, default=0, help="also preload N events into Kafka and time the drain"
    )
    bench.add_argument("--workers", type=int, default=2, help="load generator processes (default 2)")
    bench.add_argument(
        "--connections", type=int, default=32, help="keep-alive connections in all (default 32)"
    )
    bench.add_argument(
        "--baseline-count", type=int, default=20_000, help="requests for the baseline (default 20000)"
    )
    bench.add_argument(
        "--url", help="an ingest already running, e.g. http://127.0.0.1:8000 (default: start one)"
    )
    bench.add_argument("--secret", help="its signing secret (default: STRIPE_WEBHOOK_SECRET)")
    bench.add_argument("--api-url", help="where the totals API is, if not at --url")
    bench.add_argument("--database-url", help="its PostgreSQL (default: DATABASE_URL)")
    bench.add_argument("--kafka", help="its Kafka, for lag and --backlog (default: KAFKA_BOOTSTRAP_SERVERS)")
    bench.add_argument(
        "--timeout", type=float, default=600, help="longest wait for the pipeline to catch up (s)"
    )
    bench.add_argument(
        "--ingest-only",
        action="store_true",
        help="only Kafka + ingest (no consumers or stores): ingest's own ceiling and CPU per request",
    )
    bench.add_argument("--keep", action="store_true", help="keep the embedded run's data and logs")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
