import pytest

from revstream.settings import SettingsError, load_settings


def test_defaults_and_rotation_list() -> None:
    settings = load_settings({"STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b", "PORT": "9001"})
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == ["whsec_a", "whsec_b"]
    assert settings.port == 9001
    assert settings.resolved_clickhouse_url.startswith("chdb:///")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("STRIPE_WEBHOOK_SECRET", "sk_live_oops"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost"),
        ("DATABASE_URL", "mysql://x"),
        ("CLICKHOUSE_URL", "tcp://x"),
    ],
)
def test_malformed_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: value})
    assert name in str(err.value)
    if name == "STRIPE_WEBHOOK_SECRET":
        assert value not in str(err.value)  # secrets are never echoed back


def test_require_says_how_to_fix() -> None:
    with pytest.raises(SettingsError, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        load_settings({}).require("KAFKA_BOOTSTRAP_SERVERS")
