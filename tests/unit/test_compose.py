"""The docker-compose deployment stays wired to the code: every setting, every service, every mount."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from revstream.settings import env_names, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"

INFRA = ("kafka", "postgres", "clickhouse", "prometheus", "grafana")
RUN_SERVICES = ("ingest", "api", "processor", "sink-postgres", "sink-clickhouse")
HTTP_SERVICES = ("ingest", "api")
PIPELINE = (*RUN_SERVICES, "migrate")

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# What the host would supply for variables the compose file requires.
_REQUIRED_SAMPLES = {"STRIPE_WEBHOOK_SECRET": "whsec_test"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", "NAME"] form
        return dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _interpolate(value: str) -> str:
    """Resolve compose ${...} as on a host that sets only the required variables."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if op and op.endswith("?"):
            return _REQUIRED_SAMPLES.get(name, "placeholder")
        return arg if op and op.endswith("-") else ""

    return _INTERPOLATION.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return value.split() if isinstance(value, str) else [str(v) for v in value]


def test_compose_has_every_service(services: dict[str, Any]) -> None:
    assert set(INFRA + PIPELINE) <= set(services)


@pytest.mark.parametrize("name", PIPELINE)
def test_pipeline_service_gets_every_setting(services: dict[str, Any], name: str) -> None:
    env = _environment(services[name])
    missing = [var for var in env_names() if var not in env]
    assert not missing, f"{name} lacks {missing} in its environment (docker-compose.yml, x-revstream)"


@pytest.mark.parametrize("name", PIPELINE)
def test_pipeline_service_environment_is_valid(services: dict[str, Any], name: str) -> None:
    env = {k: _interpolate(v) for k, v in _environment(services[name]).items()}
    settings = load_settings(env)  # raises SettingsError naming a malformed value
    assert settings.database_url and settings.database_url.endswith("@postgres:5432/revstream")
    assert settings.clickhouse_url and "@clickhouse:8123/" in settings.clickhouse_url
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.host == "0.0.0.0"
    assert settings.metrics_port > 0


def test_secrets_are_passed_through_not_hardcoded(services: dict[str, Any]) -> None:
    secrets = ("STRIPE_WEBHOOK_SECRET", "GUMROAD_WEBHOOK_SECRET", "SLACK_WEBHOOK_URL")
    secrets += ("REVSTREAM_API_TOKEN", "REVSTREAM_ADMIN_TOKEN")
    for name in PIPELINE:
        env = _environment(services[name])
        for secret in secrets:
            assert _INTERPOLATION.fullmatch(env[secret]), f"{name}: {secret} must come from the host"


def test_backing_services_match_the_urls(services: dict[str, Any]) -> None:
    pg = _environment(services["postgres"])
    assert (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]) == ("revstream",) * 3
    ch = _environment(services["clickhouse"])
    assert (ch["CLICKHOUSE_USER"], ch["CLICKHOUSE_PASSWORD"], ch["CLICKHOUSE_DB"]) == ("revstream",) * 3
    kafka = _environment(services["kafka"])
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    for name in ("kafka", "postgres", "clickhouse"):
        assert "healthcheck" in services[name], name


@pytest.mark.parametrize("name", RUN_SERVICES)
def test_run_service_command(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert "entrypoint" not in service, "pipeline services use the image's revstream entrypoint"
    command = _as_list(service["command"])
    assert command == ["run", name]
    assert command[1] in RUN_SERVICES
    assert "build" in service


def test_migrate_is_a_one_shot_that_the_others_wait_for(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    script = " ".join(_as_list(migrate.get("entrypoint")) + _as_list(migrate["command"]))
    assert "revstream migrate" in script
    assert "revstream topics" in script
    assert migrate.get("restart", "no") == "no"
    for infra in ("kafka", "postgres", "clickhouse"):
        assert migrate["depends_on"][infra]["condition"] == "service_healthy"
    for name in RUN_SERVICES:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_http_ports(services: dict[str, Any]) -> None:
    assert "8000:8000" in services["ingest"]["ports"]
    assert "8001:8000" in services["api"]["ports"]
    for name in HTTP_SERVICES:
        assert _environment(services[name])["PORT"] == "8000"


def test_mounted_deploy_paths_exist(services: dict[str, Any]) -> None:
    mounted = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("."):
                path = (ROOT / source).resolve()
                assert path.exists(), f"{name} mounts {source}, which is not in the repo"
                mounted.append(path)
    assert (ROOT / "deploy" / "prometheus").resolve() in mounted
    assert (GRAFANA / "provisioning").resolve() in mounted
    assert (GRAFANA / "dashboards").resolve() in mounted


def test_dockerfile_entrypoint_is_revstream() -> None:
    instructions = {}
    for line in DOCKERFILE.read_text().splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() in {"FROM", "ENTRYPOINT", "CMD", "USER", "EXPOSE"}:
            instructions[keyword.upper()] = rest.strip()
    assert json.loads(instructions["ENTRYPOINT"]) == ["revstream"]
    assert json.loads(instructions["CMD"]) == ["run", "ingest"]
    assert instructions["FROM"].startswith("python:3.11")
    assert instructions["USER"] not in {"root", "0"}
    assert "8000" in instructions["EXPOSE"].split()
    assert "pip install --no-cache-dir -e ." in DOCKERFILE.read_text()


def _scrape_targets(config: dict[str, Any]) -> dict[str, set[str]]:
    targets: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        found = targets.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            found.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            found.update(f"{name}:{dns['port']}" for name in dns["names"])
    return targets


def test_prometheus_scrapes_every_service(services: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = _scrape_targets(config)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in RUN_SERVICES:
        env = _environment(services[name])
        port = env["PORT"] if name in HTTP_SERVICES else env["REVSTREAM_METRICS_PORT"]
        job = f"revstream-{name}"
        assert targets.get(job) == {f"{name}:{port}"}, job
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"


def test_alert_rules_parse() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    assert rules["groups"], "at least one rule group"
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"]
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert 'up{job=~"revstream.*"} == 0' in exprs


def test_grafana_provisioning() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    assert (prometheus["uid"], prometheus["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    paths = [p["options"]["path"] for p in providers["providers"]]
    assert paths == ["/var/lib/grafana/dashboards"]


@pytest.mark.parametrize("path", sorted((GRAFANA / "dashboards").glob("*.json")), ids=lambda p: p.name)
def test_grafana_dashboard_panels_have_queries(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert panels
    for panel in panels:
        assert panel["targets"], panel.get("title")
        for target in panel["targets"]:
            assert target["expr"], panel.get("title")
            assert target.get("datasource", panel.get("datasource"))["uid"] == "prometheus"


def test_grafana_has_a_dashboard() -> None:
    assert (GRAFANA / "dashboards" / "pipeline-health.json").is_file()
