"""revstream: a revenue event pipeline. `revstream up` runs all of it on the embedded default."""

import argparse
import logging
import sys
from pathlib import Path

from revstream.settings import SettingsError, load_settings


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "faststream", "kafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _migrate() -> int:
    from revstream.wiring import require_database
    from sinks.clickhouse.client import ClickHouse
    from sinks.postgres.migrations import apply_migrations

    settings = load_settings()
    applied = apply_migrations(require_database(settings))
    print(f"PostgreSQL: applied {', '.join(applied) or 'nothing (up to date)'}")
    ClickHouse(settings.resolved_clickhouse_url).close()
    print(f"ClickHouse: schema ensured at {settings.resolved_clickhouse_url.split('@')[-1]}")
    return 0


def _topics() -> int:
    from revstream.localservices.kafka import create_topics
    from revstream.wiring import topics_for

    settings = load_settings()
    settings.require("KAFKA_BOOTSTRAP_SERVERS")
    assert settings.kafka_bootstrap_servers is not None
    names = topics_for(settings).all()
    create_topics(settings.kafka_bootstrap_servers, names)
    print("topics ready: " + ", ".join(names))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="run the whole pipeline on the embedded default (local Kafka, PostgreSQL, chdb)"
    )
    run = commands.add_parser("run", help="run one service in this process")
    run.add_argument("service", help="web | ingest | api | processor | sink-postgres | sink-clickhouse")
    commands.add_parser("migrate", help="apply PostgreSQL migrations and the ClickHouse schema")
    commands.add_parser("topics", help="create the Kafka topics (idempotent)")
    send = commands.add_parser(
        "send-stripe", help="sign a Stripe event file with STRIPE_WEBHOOK_SECRET and POST it"
    )
    send.add_argument("file", type=Path, help="a Stripe event JSON file, e.g. tests/fixtures/stripe/...")
    send.add_argument("--url", help="webhook URL (default http://HOST:PORT/webhooks/stripe)")
    from revstream.bench.args import add_parser as add_bench_parser

    add_bench_parser(commands)
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        if args.command == "up":
            from revstream.embedded import Supervisor

            return Supervisor(load_settings()).run()
        if args.command == "run":
            from revstream.runner import run_service

            run_service(load_settings(), args.service)
            return 0
        if args.command == "send-stripe":
            from revstream.send import send_stripe

            return send_stripe(load_settings(), args.file, args.url)
        if args.command == "bench":
            from revstream.bench.run import bench_main

            return bench_main(args)
        if args.command == "migrate":
            return _migrate()
        return _topics()
    except SettingsError as exc:
        print(f"revstream: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
