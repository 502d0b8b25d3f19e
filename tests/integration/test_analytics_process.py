"""`revstream sql` and `revstream fx load` against a real running `web` process that owns chdb,
then against the stopped pipeline (chdb opened directly), with PostgreSQL for the rates."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Pipeline
from tests.services import ServiceEndpoints

pytestmark = pytest.mark.integration


def _revstream(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sql_and_fx_load_through_the_running_process_then_directly(
    services: ServiceEndpoints, tmp_path: Path
) -> None:
    deployment = Pipeline(services, tmp_path)
    deployment.env.update(
        {
            "REVSTREAM_API_TOKEN": "read-token",
            "REVSTREAM_ADMIN_TOKEN": "admin-token",
            "REVSTREAM_REPORTING_CURRENCY": "usd",
        }
    )
    rates = tmp_path / "rates.csv"
    rates.write_text("date,base,quote,rate\n2024-05-01,eur,usd,1.0712\n2024-05-08,EUR,USD,1.0801\n")
    try:
        deployment.start("web")  # owns the chdb directory from here on
        loaded = _revstream(deployment.env, "fx", "load", str(rates))
        assert loaded.returncode == 0, loaded.stderr + loaded.stdout
        assert "through the running process" in loaded.stdout
        assert deployment.sql(
            "SELECT base, quote, rate_date::text, rate::text FROM fx_rates ORDER BY rate_date"
        ) == [
            ("eur", "usd", "2024-05-01", "1.071200000000000000"),
            ("eur", "usd", "2024-05-08", "1.080100000000000000"),
        ]
        query = "SELECT base, quote, toString(date) AS day, rate FROM fx_rates FINAL ORDER BY day"
        table = _revstream(deployment.env, "sql", query)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["base", "quote", "day", "rate"] and lines[-1] == "(2 rows)"
        assert lines[2].split()[:3] == ["eur", "usd", "2024-05-01"]

        refused = _revstream(deployment.env, "sql", "DROP TABLE fx_rates")
        assert refused.returncode == 1 and "only SELECT" in refused.stderr
        wrong = deployment.http.post(
            "/api/v1/sql", json={"query": query}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        totals = deployment.http.get("/api/v1/revenue/totals", headers={"Authorization": "Bearer read-token"})
        assert totals.status_code == 200
        assert totals.json()["today"]["reporting"] == {
            "currency": "usd",
            "gross": 0,
            "refunds": 0,
            "disputes": 0,
            "net": 0,
            "missing_rates": [],
        }
        assert deployment.http.get("/api/v1/revenue/trends").status_code == 401
    finally:
        deployment.stop_all()

    # Pipeline stopped: the same command opens chdb itself and sees what the process wrote.
    direct = _revstream(deployment.env, "sql", "--csv", "SELECT count() AS rates FROM fx_rates FINAL")
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout.splitlines() == ["rates", "2"]
