"""How `revstream up` wires its HTTP children: ingest on HOST:PORT forwarding to analytics, which
listens on loopback only, and which children yield the CPU to ingest."""

from pathlib import Path

from revstream.embedded import BACKGROUND_CHILDREN, CHILDREN, Supervisor
from revstream.settings import Settings


def test_analytics_stays_on_loopback_even_when_ingest_is_exposed(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "HOST": "0.0.0.0",
            "PORT": 8000,
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "REVSTREAM_DATA_DIR": str(tmp_path),
        }
    )
    supervisor = Supervisor(settings)
    base = {"HOST": "0.0.0.0", "PORT": "8000"}
    analytics = supervisor.child_env("analytics", base)
    ingest = supervisor.child_env("ingest", base)
    assert analytics["HOST"] == "127.0.0.1" and analytics["PORT"] == str(supervisor.analytics_port)
    assert analytics["PORT"] != "8000"
    assert ingest["REVSTREAM_API_UPSTREAM"] == f"http://127.0.0.1:{supervisor.analytics_port}"
    assert (ingest["HOST"], ingest["PORT"]) == ("0.0.0.0", "8000")  # ingest keeps the public address
    assert supervisor.child_env("processor", base) == base


def test_only_ingest_keeps_the_default_priority() -> None:
    assert "ingest" in CHILDREN and "ingest" not in BACKGROUND_CHILDREN
    assert set(CHILDREN) - {"ingest"} <= set(BACKGROUND_CHILDREN)
