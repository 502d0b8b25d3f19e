"""The alert API on PostgreSQL: list with the read token, lifecycle changes with the admin token,
every change audited (who, when, from, to), invalid moves refused without changing anything."""

import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from processors.anomalies.store import INSERT_ALERT, alert_row
from revstream.alerts_api import AlertsApi
from revstream.settings import load_settings
from schemas.alerts import Alert, Severity, alert_id
from tests.conftest import Pipeline
from tests.services import ServiceEndpoints

pytestmark = pytest.mark.integration

READ, ADMIN = "read-token", "admin-token"


def _app(api: AlertsApi) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await api.start()
        try:
            yield
        finally:
            await api.stop()

    return Starlette(routes=api.routes, lifespan=lifespan)


def _alert(n: int) -> Alert:
    start = datetime(2024, 6, 5, tzinfo=UTC) + timedelta(hours=n)
    return Alert(
        alert_id=alert_id("duplicate_charge", start, f"k{n}"),
        rule="duplicate_charge",
        severity=Severity.WARNING,
        entity="shop",
        currency="usd",
        livemode=n % 2 == 0,
        window_start=start,
        window_end=start,
        title=f"alert {n}",
        observed=4900,
        unit="minor_units",
        details={"n": n},
    )


@pytest.fixture
def client(services: ServiceEndpoints, tmp_path: Path) -> Iterator[tuple[TestClient, Pipeline]]:
    pipeline = Pipeline(services, tmp_path)
    with psycopg.connect(pipeline.database_url) as conn:
        for n in range(5):
            conn.execute(INSERT_ALERT, alert_row(_alert(n)))
    settings = load_settings({"REVSTREAM_API_TOKEN": READ, "REVSTREAM_ADMIN_TOKEN": ADMIN})
    api = AlertsApi(settings, pipeline.database_url)
    app = _app(api)
    try:
        with TestClient(app) as test_client:
            yield test_client, pipeline
    finally:
        pipeline.stop_all()


def test_list_paginates_and_filters(client: tuple[TestClient, Pipeline]) -> None:
    http, _ = client
    assert http.get("/api/v1/alerts").status_code == 401
    auth = {"Authorization": f"Bearer {READ}"}
    seen, cursor = [], None
    while True:
        page = http.get(
            "/api/v1/alerts", params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=auth
        )
        assert page.status_code == 200
        seen += [a["alert_id"] for a in page.json()["alerts"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(_alert(n).alert_id for n in range(5)) and len(seen) == 5
    live = http.get("/api/v1/alerts", params={"livemode": "true"}, headers=auth).json()["alerts"]
    assert {a["title"] for a in live} == {"alert 0", "alert 2", "alert 4"}
    for bad in ({"limit": "0"}, {"status": "closed"}, {"cursor": "nonsense"}, {"livemode": "maybe"}):
        response = http.get("/api/v1/alerts", params=bad, headers=auth)
        assert response.status_code == 400 and "Traceback" not in response.text


def test_lifecycle_changes_are_audited(client: tuple[TestClient, Pipeline]) -> None:
    http, pipeline = client
    target = _alert(1).alert_id
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert http.post(f"/api/v1/alerts/{target}/acknowledge").status_code == 401
    assert (
        http.post(
            f"/api/v1/alerts/{target}/acknowledge", headers={"Authorization": f"Bearer {READ}"}
        ).status_code
        == 401
    )
    assert (
        http.post(f"/api/v1/alerts/{target}/acknowledge", headers=admin, content=b"{bad").status_code == 400
    )
    assert http.post(f"/api/v1/alerts/{target}/explode", headers=admin).status_code == 404
    assert http.post("/api/v1/alerts/alert_nope/acknowledge", headers=admin).status_code == 404

    ack = http.post(
        f"/api/v1/alerts/{target}/acknowledge", headers=admin, json={"actor": "alice", "note": "looking"}
    )
    assert ack.json() == {"alert_id": target, "status": "acknowledged", "changed": True, "from": "open"}
    again = http.post(f"/api/v1/alerts/{target}/acknowledge", headers=admin, json={"actor": "bob"})
    assert again.status_code == 200 and again.json()["changed"] is False
    assert (
        http.post(f"/api/v1/alerts/{target}/resolve", headers=admin, json={"actor": "bob"}).status_code == 200
    )
    refused = http.post(f"/api/v1/alerts/{target}/dismiss", headers=admin, json={"actor": "carol"})
    assert refused.status_code == 409

    events = pipeline.sql(
        "SELECT actor, from_status, to_status, note FROM alert_events WHERE alert_id = %s ORDER BY id", target
    )
    assert events == [("alice", "open", "acknowledged", "looking"), ("bob", "acknowledged", "resolved", None)]
    detail = http.get(f"/api/v1/alerts/{target}", headers={"Authorization": f"Bearer {READ}"}).json()
    assert detail["status"] == "resolved" and [e["actor"] for e in detail["events"]] == ["alice", "bob"]
    assert pipeline.sql("SELECT status FROM alerts WHERE alert_id = %s", _alert(2).alert_id) == [("open",)]


def test_writes_are_off_without_an_admin_token(services: ServiceEndpoints, tmp_path: Path) -> None:
    pipeline = Pipeline(services, tmp_path)
    api = AlertsApi(load_settings({}), pipeline.database_url)
    app = _app(api)
    try:
        with TestClient(app) as http:
            response = http.post("/api/v1/alerts/x/acknowledge")
            assert response.status_code == 403 and "REVSTREAM_ADMIN_TOKEN" in response.json()["message"]
    finally:
        pipeline.stop_all()
