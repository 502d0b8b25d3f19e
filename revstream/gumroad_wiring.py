"""Settings -> the Gumroad ingest route (composition root; ingest/ never reads Settings)."""

from starlette.routing import Route

from ingest.gumroad_http import GumroadConfig, gumroad_routes
from ingest.http import UNBOUNDED, Admission
from ingest.publisher import RawPublisher
from revstream.settings import Settings, SettingsError


def gumroad_routes_for(
    settings: Settings, publisher: RawPublisher, admission: Admission = UNBOUNDED
) -> list[Route]:
    """The Gumroad route, always mounted (disabled = 404, like a wrong token).

    Refuses to start Gumroad without an allow-list: the URL token is Gumroad's only credential, and
    a leaked URL must not let any Gumroad seller put revenue into these books."""
    secret = settings.gumroad_webhook_secret
    if secret is not None and not settings.gumroad_seller_ids:
        raise SettingsError(
            "GUMROAD_SELLER_IDS is empty: list the Gumroad seller_id values to accept (comma-separated; "
            "the seller_id of any ping from your account), or unset GUMROAD_WEBHOOK_SECRET"
        )
    config = GumroadConfig(
        secret=secret.get_secret_value() if secret is not None else None,
        seller_ids=settings.gumroad_seller_ids,
        entity=settings.entity,
        max_body_bytes=settings.max_body_bytes,
    )
    return gumroad_routes(config, publisher, admission)
