"""Every alert rule and dashboard query names only metrics the code really exports.

The PromQL is parsed (promql-parser, the Rust parser Prometheus-compatible tools use), every
selector's metric name is collected, and each must be a sample name of a metric registered by
revstream's metric modules: counters as <name>_total, histograms as <name>_bucket/_count/_sum,
gauges as <name>. `up` is Prometheus's own.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
METRIC_MODULES = (
    "ingest.metrics",
    "processors.metrics",
    "sinks.metrics",
    "revstream.consumer_lag",
    "revstream.alert_metrics",
)
PROMETHEUS_OWN = {"up"}
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
    "gauge": ("",),
}
GRAFANA_VARIABLE = re.compile(r"\$__\w+|\$\{[^}]+\}|\$\w+")


def exported_names() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = set(PROMETHEUS_OWN)
    for family in REGISTRY.collect():
        if family.name.startswith("revstream_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names selected anywhere in a PromQL expression (Grafana variables made concrete)."""
    tree = promql_parser.parse(GRAFANA_VARIABLE.sub("5m", expr))
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"selector without a metric name in {expr!r}"
            found.add(node.name)
            return
        for attribute in ("lhs", "rhs", "expr", "vector_selector", "param"):
            child = getattr(node, attribute, None)
            if child is not None and not isinstance(child, int | float | str):
                visit(child)
        for child in getattr(node, "args", None) or []:
            visit(child)

    visit(tree)
    return found


def rule_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


EXPRESSIONS = rule_expressions() + dashboard_expressions()


def test_the_parser_finds_names() -> None:
    expr = 'sum by (g) (rate(a_total{x="1"}[5m])) / on() histogram_quantile(0.9, sum by (le) (rate(b_bucket[$__rate_interval]))) or vector(0)'
    assert metric_names(expr) == {"a_total", "b_bucket"}
    assert metric_names("deriv(sum(c)[10m:1m]) > 0 and -d") == {"c", "d"}


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_query_names_only_exported_metrics(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    unknown = names - exported_names()
    assert not unknown, f"{where}: {sorted(unknown)} are not exported by {METRIC_MODULES}"


def test_every_required_alert_exists() -> None:
    alerts = {name for name, _ in rule_expressions()}
    required = {
        "RevstreamIngest5xx",
        "RevstreamConsumerLagGrowing",
        "RevstreamDeadLetterQueueNotEmpty",
        "RevstreamNoEventsReceived",
    }
    assert required <= alerts


def test_dashboards_cover_pipeline_health_and_revenue() -> None:
    uids = {json.loads(path.read_text())["uid"] for path in DASHBOARDS}
    assert {"revstream-pipeline-health", "revstream-revenue"} <= uids
    used = set().union(*(metric_names(expr) for _, expr in dashboard_expressions()))
    # Every revstream metric appears on some dashboard.
    exported = {n for n in exported_names() if n.startswith("revstream_")}
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exported}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    assert families - shown == set()


def test_metric_conventions() -> None:
    exported_names()
    for family in REGISTRY.collect():
        if not family.name.startswith("revstream_"):
            continue
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_size")), family.name
        if family.type == "gauge":
            assert family.name.endswith(("_messages", "_offset", "_requests")), family.name
        assert family.documentation, family.name
