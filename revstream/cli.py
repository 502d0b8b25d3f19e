"""revstream: a revenue event pipeline. `revstream up` runs all of it on the embedded default."""

import argparse
import logging
import sys
from pathlib import Path

from revstream.operator_client import OperatorError
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
    run.add_argument(
        "service",
        help="web | ingest | api | analytics | processor | sink-postgres | sink-clickhouse | anomalies | slack | summaries",
    )
    commands.add_parser("migrate", help="apply PostgreSQL migrations and the ClickHouse schema")
    commands.add_parser("topics", help="create the Kafka topics (idempotent)")
    send = commands.add_parser(
        "send-stripe", help="sign a Stripe event file with STRIPE_WEBHOOK_SECRET and POST it"
    )
    send.add_argument("file", type=Path, help="a Stripe event JSON file, e.g. tests/fixtures/stripe/...")
    send.add_argument("--url", help="webhook URL (default http://HOST:PORT/webhooks/stripe)")
    events = commands.add_parser("events", help="webhook event records: list, show, replay").add_subparsers(
        dest="events_command", required=True
    )
    events_list = events.add_parser("list", help="newest first")
    events_list.add_argument("--state", choices=["received", "processed", "ignored", "failed"])
    events_list.add_argument("--source", choices=["stripe", "gumroad", "manual"])
    events_list.add_argument("--limit", type=int, default=50)
    for name, text in (("show", "one event, with its error"), ("replay", "derive one event again")):
        sub = events.add_parser(name, help=text)
        sub.add_argument("id", help="the provider event id (evt_..., a Gumroad sale+resource, ...)")
        sub.add_argument("--source", default="stripe", choices=["stripe", "gumroad", "manual"])
    for sub in events.choices.values():
        sub.add_argument("--url", help="the pipeline's API (default http://HOST:PORT)")
    backfill = commands.add_parser("backfill", help="import history").add_subparsers(
        dest="backfill_command", required=True
    )
    csv_parser = backfill.add_parser("csv", help="offline revenue from a CSV file (idempotent)")
    csv_parser.add_argument("file", type=Path)
    csv_parser.add_argument("--url", help="the pipeline's API (default http://HOST:PORT)")
    stripe_backfill = backfill.add_parser(
        "stripe", help="Stripe events since a date, from the Events API (needs STRIPE_API_KEY; resumable)"
    )
    stripe_backfill.add_argument(
        "--since", required=True, help="YYYY-MM-DD or ISO time (Stripe keeps 30 days)"
    )
    stripe_backfill.add_argument(
        "--restart", action="store_true", help="ignore a saved cursor and start over"
    )
    stripe_backfill.add_argument("--page-size", type=int, default=100, help="events per API page (1-100)")
    dlq = commands.add_parser("dlq", help="list dead letters, or replay them onto the raw topic after a fix")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_commands.add_parser(
        "list", help="every dead letter: id (partition:offset), time, stage, event, reason"
    )
    dlq_replay = dlq_commands.add_parser(
        "replay", help="publish dead letters' payloads to the raw topic again"
    )
    dlq_which = dlq_replay.add_mutually_exclusive_group(required=True)
    dlq_which.add_argument("--id", action="append", dest="ids", metavar="PARTITION:OFFSET", help="repeatable")
    dlq_which.add_argument("--all", action="store_true", help="every readable dead letter")
    audit = commands.add_parser("audit", help="the audit chain of money movements")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser(
        "verify", help="recompute every receipt hash, chain link and Merkle anchor; name the first broken one"
    )
    trace = commands.add_parser(
        "trace", help="one buyer's path: webhook events -> order -> revenue records -> receipts"
    )
    trace.add_argument("id", help="a Stripe id: evt_, pi_, ch_, cs_, re_, cus_ ...")
    trace.add_argument("--json", action="store_true", help="print JSON instead of text")
    sql = commands.add_parser("sql", help="run one read-only ClickHouse query (through the running process)")
    sql.add_argument("query", help='one SELECT / WITH / SHOW / DESCRIBE statement, e.g. "SHOW TABLES"')
    sql.add_argument("--csv", action="store_true", help="CSV with a header row instead of a table")
    sql.add_argument("--url", help="the running web process (default http://HOST:PORT)")
    fx = commands.add_parser("fx", help="FX rates for reporting-currency totals")
    fx_commands = fx.add_subparsers(dest="fx_command", required=True)
    fx_load = fx_commands.add_parser(
        "load", help="load a date,base,quote,rate CSV into PostgreSQL and ClickHouse"
    )
    fx_load.add_argument("file", type=Path, help="CSV with the header date,base,quote,rate")
    fx_load.add_argument("--url", help="the running web process (default http://HOST:PORT)")
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
        if args.command == "events":
            from revstream import events_cli

            if args.events_command == "list":
                return events_cli.list_events(load_settings(), args.url, args.state, args.source, args.limit)
            if args.events_command == "show":
                return events_cli.show_event(load_settings(), args.url, args.source, args.id)
            return events_cli.replay_event(load_settings(), args.url, args.source, args.id)
        if args.command == "backfill" and args.backfill_command == "stripe":
            from revstream.stripe_backfill_cli import backfill_stripe

            return backfill_stripe(load_settings(), args.since, args.restart, args.page_size)
        if args.command == "backfill" and args.backfill_command == "csv":
            from revstream.csv_backfill import backfill_csv

            return backfill_csv(load_settings(), args.file, args.url)
        if args.command == "dlq":
            from revstream.dlq import run_dlq

            return run_dlq(load_settings(), args)
        if args.command == "bench":
            from revstream.bench.run import bench_main

            return bench_main(args)
        if args.command == "migrate":
            return _migrate()
        if args.command in ("audit", "trace"):
            from revstream.audit_commands import audit_verify, trace_command

            if args.command == "audit":
                return audit_verify(load_settings())
            return trace_command(load_settings(), args.id, args.json)
        if args.command == "sql":
            from revstream.sql_cli import run_sql

            return run_sql(load_settings(), args.query, args.csv, args.url)
        if args.command == "fx":
            from revstream.fx import load_fx

            return load_fx(load_settings(), args.file, args.url)
        return _topics()
    except (SettingsError, OperatorError) as exc:
        print(f"revstream: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
