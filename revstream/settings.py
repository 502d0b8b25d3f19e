"""Configuration, read once from the environment at start-up.

Names are the ones operators already use for these systems (DATABASE_URL, PORT, ...).
A missing or malformed value stops start-up with a message naming the variable and the fix;
nothing here ever logs a secret's value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from schemas.envelope import MAX_BODY_BYTES


class SettingsError(Exception):
    """A setting is missing or malformed; the message says which one and how to fix it."""


def _split_secrets(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_ENDPOINT_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class StripeEndpointSettings(BaseModel):
    """One extra Stripe webhook endpoint: the entity its money belongs to and its signing secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entity: str = Field(min_length=1, max_length=100)
    secrets: list[SecretStr] = Field(min_length=1)

    _split = field_validator("secrets", mode="before")(_split_secrets)

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        return _check_whsec(secrets)


def _check_whsec(secrets: list[SecretStr]) -> list[SecretStr]:
    for secret in secrets:
        if not secret.get_secret_value().startswith("whsec_"):
            raise ValueError("each secret must start with whsec_ (copy it from the Stripe dashboard)")
    return secrets


class Settings(BaseModel):
    """Every setting revstream reads. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    stripe_webhook_secrets: list[SecretStr] = Field(
        default_factory=list,
        alias="STRIPE_WEBHOOK_SECRET",
        description="Stripe endpoint signing secret(s), whsec_...; comma-separated to keep the old "
        "one valid during a rotation. Empty disables /webhooks/stripe.",
    )
    stripe_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        alias="STRIPE_WEBHOOK_TOLERANCE_SECONDS",
        description="How far a Stripe-Signature timestamp may be from now (replay protection).",
    )
    stripe_endpoints: dict[str, StripeEndpointSettings] = Field(
        default_factory=dict,
        alias="REVSTREAM_STRIPE_ENDPOINTS",
        description='More Stripe endpoints, one per business entity, as JSON: {"eu": {"entity": "acme-eu", '
        '"secrets": ["whsec_..."]}} serves /webhooks/stripe/eu. The default endpoint is STRIPE_WEBHOOK_SECRET.',
    )
    gumroad_webhook_secret: SecretStr | None = Field(
        default=None,
        alias="GUMROAD_WEBHOOK_SECRET",
        description="Secret token in the Gumroad ping URL (/webhooks/gumroad/<token>).",
    )
    database_url: str | None = Field(
        default=None,
        alias="DATABASE_URL",
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: `revstream up` "
        "starts a local server in the data directory.",
    )
    clickhouse_url: str | None = Field(
        default=None,
        alias="CLICKHOUSE_URL",
        description="ClickHouse: http://user:pass@host:8123/db for a server, chdb:///path for embedded. "
        "Unset: chdb in <data dir>/clickhouse.",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka brokers, host:port[,host:port]. Unset: `revstream up` starts a local broker.",
    )
    slack_webhook_url: SecretStr | None = Field(
        default=None,
        alias="SLACK_WEBHOOK_URL",
        description="Slack incoming-webhook URL for alerts and summaries (unset: no Slack posts).",
    )
    port: int = Field(default=8000, ge=1, le=65535, alias="PORT", description="HTTP port (webhooks + API).")
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        alias="REVSTREAM_METRICS_PORT",
        description="Port serving /metrics for services without an HTTP server (processor, sinks); 0 = off.",
    )
    host: str = Field(default="127.0.0.1", alias="HOST", description="HTTP bind address.")
    api_upstream: str | None = Field(
        default=None,
        alias="REVSTREAM_API_UPSTREAM",
        description="For `run ingest`: forward every request ingest does not serve (the query API, /docs) "
        "to this analytics process (http://127.0.0.1:PORT). `revstream up` sets it; unset: 404.",
    )
    data_dir: Path = Field(
        default=Path(".revstream"),
        alias="REVSTREAM_DATA_DIR",
        description="Where the embedded default keeps Kafka, PostgreSQL and chdb data across restarts.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        alias="REVSTREAM_API_TOKEN",
        description="When set, API reads need `Authorization: Bearer <token>`.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        alias="REVSTREAM_ADMIN_TOKEN",
        description="When set, API writes need `Authorization: Bearer <token>`; unset disables writes.",
    )
    entity: str = Field(
        default="default",
        min_length=1,
        alias="REVSTREAM_ENTITY",
        description="Business entity recorded on events from the default endpoints.",
    )
    topic_prefix: str = Field(
        default="",
        alias="REVSTREAM_TOPIC_PREFIX",
        description="Prefix for every topic name, to share one broker between deployments or tests.",
    )
    publish_timeout_ms: int = Field(
        default=5000,
        ge=100,
        alias="REVSTREAM_PUBLISH_TIMEOUT_MS",
        description="Longest ingest waits for the broker's ack before answering 503 + Retry-After.",
    )
    max_body_bytes: int = Field(
        default=MAX_BODY_BYTES,
        le=MAX_BODY_BYTES,
        ge=1024,
        alias="REVSTREAM_MAX_BODY_BYTES",
        description="Largest webhook body accepted; larger gets 413. At most (and by default) 524288: "
        "enveloped, a larger body could exceed Kafka's 1 MiB record limit (schemas/envelope.py).",
    )
    max_inflight: int = Field(
        default=1000,
        ge=1,
        alias="REVSTREAM_MAX_INFLIGHT",
        description="Webhook requests ingest works on at once; more get 503 + Retry-After (load shedding).",
    )
    sink_batch_size: int = Field(
        default=500,
        ge=1,
        alias="REVSTREAM_SINK_BATCH_SIZE",
        description="Sinks write when this many records are buffered...",
    )
    sink_flush_ms: int = Field(
        default=200,
        ge=1,
        alias="REVSTREAM_SINK_FLUSH_MS",
        description="...or when this many milliseconds passed since the batch started, whichever first.",
    )
    gumroad_seller_ids: list[str] = Field(
        default_factory=list,
        alias="GUMROAD_SELLER_IDS",
        description="Gumroad seller_id values whose pings are accepted, comma-separated. Required when "
        "GUMROAD_WEBHOOK_SECRET is set: ingest refuses to start Gumroad without an allow-list.",
    )
    stripe_api_key: SecretStr | None = Field(
        default=None,
        alias="STRIPE_API_KEY",
        description="Stripe secret or restricted key (read access to events) for `revstream backfill "
        "stripe`; never logged.",
    )
    stripe_api_base: str = Field(
        default="https://api.stripe.com",
        alias="REVSTREAM_STRIPE_API_BASE",
        description="Stripe API base URL for the backfill (tests point it at a local recorded-pages server).",
    )

    alert_rules: str | None = Field(
        default=None,
        alias="REVSTREAM_ALERT_RULES",
        description='Threshold alert rules as a JSON list, e.g. [{"name": "big-payment", "type": '
        '"payment_above", "currency": "usd", "amount_minor": 500000}] (types: payment_above, '
        "daily_revenue_below).",
    )
    anomaly_tuning: str | None = Field(
        default=None,
        alias="REVSTREAM_ANOMALY_TUNING",
        description="JSON object overriding anomaly detector defaults (processors/anomalies/config.py).",
    )
    business_tz: str = Field(
        default="America/Chicago",
        alias="REVSTREAM_BUSINESS_TZ",
        description="IANA timezone for business day / week (Monday) / month boundaries: summaries, daily "
        "rules, totals and trends (responses stay in UTC).",
    )
    slack_max_age_hours: int = Field(
        default=48,
        ge=1,
        alias="REVSTREAM_SLACK_MAX_AGE_HOURS",
        description="Slack messages about things older than this are not posted (e.g. after a long outage).",
    )
    summary_catchup_days: int = Field(
        default=7,
        ge=1,
        alias="REVSTREAM_SUMMARY_CATCHUP_DAYS",
        description="After downtime, missed summaries are produced for at most this many days back.",
    )

    reporting_currency: str | None = Field(
        default=None,
        alias="REVSTREAM_REPORTING_CURRENCY",
        description="ISO 4217 code (e.g. usd): totals and trends also report in it, converted with the "
        "dated rates from `revstream fx load`. Unset: per-currency figures only.",
    )

    _split = field_validator("stripe_webhook_secrets", mode="before")(_split_secrets)
    _split_sellers = field_validator("gumroad_seller_ids", mode="before")(_split_secrets)

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _whsec(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        return _check_whsec(secrets)

    @field_validator("stripe_endpoints", mode="before")
    @classmethod
    def _endpoints_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(
                    'expected JSON like {"eu": {"entity": "acme-eu", "secrets": ["whsec_..."]}}'
                ) from None
        return value

    @field_validator("stripe_endpoints")
    @classmethod
    def _endpoint_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not re.match(_ENDPOINT_NAME, name) or name == "default":
                raise ValueError(
                    f"endpoint name {name!r} must be lowercase letters, digits, - or _ and not 'default' "
                    "(the default endpoint is STRIPE_WEBHOOK_SECRET)"
                )
        return value

    @field_validator("stripe_api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL such as https://api.stripe.com")
        return value.rstrip("/")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _hostports(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError("expected host:port[,host:port], e.g. localhost:9092")
        return value

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected postgresql://user:password@host:5432/dbname")
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _ch_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "chdb://")):
            raise ValueError("expected http://user:password@host:8123/db or chdb:///absolute/path")
        return value

    @field_validator("business_tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA timezone name such as America/Chicago or UTC") from None
        return value

    @field_validator("reporting_currency")
    @classmethod
    def _iso_currency(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-zA-Z]{3}", value):
            raise ValueError("expected a three-letter ISO 4217 code, e.g. usd")
        return None if value is None else value.lower()

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_clickhouse_url(self) -> str:
        return self.clickhouse_url or f"chdb://{self.resolved_data_dir / 'clickhouse'}"

    def configured_sources(self) -> list[str]:
        """The sources ingest would accept; each one is off until its secret is set."""
        sources = []
        if self.stripe_webhook_secrets or self.stripe_endpoints:
            sources.append("stripe")
        if self.gumroad_webhook_secret is not None:
            sources.append("gumroad")
        if self.admin_token is not None:
            sources.append("manual")
        return sources

    def require(self, *names: str) -> None:
        """Fail start-up unless the named fields (by env name) are set."""
        for env_name in names:
            field = next(k for k, f in Settings.model_fields.items() if f.alias == env_name)
            value = getattr(self, field)
            if value is None or value == []:
                raise SettingsError(f"{env_name} is not set: {Settings.model_fields[field].description}")


def env_names() -> list[str]:
    """Every environment variable revstream reads (used by the docker-compose wiring test)."""
    return [f.alias for f in Settings.model_fields.values() if f.alias]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment; raise SettingsError naming the first bad variable."""
    environ = os.environ if environ is None else environ
    names = set(env_names())
    raw = {k: v for k, v in environ.items() if k in names and v != ""}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            field = str(err["loc"][0]) if err["loc"] else "?"
            alias = Settings.model_fields[field].alias if field in Settings.model_fields else field
            problems.append(f"{alias}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
