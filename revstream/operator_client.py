"""The operator commands' way in: the running pipeline's HTTP API.

`revstream events ...` and `revstream backfill csv` talk to the API of a running pipeline (the
embedded default or production), so they work the same everywhere and go through the same
validation, idempotency and Kafka acknowledgement as any client. Tokens come from
REVSTREAM_API_TOKEN (reads) and REVSTREAM_ADMIN_TOKEN (writes).
"""

from typing import Any

import httpx

from revstream.settings import Settings


class OperatorError(Exception):
    """The API could not be reached or refused the request; the message says what to do."""


def api_base(settings: Settings, url: str | None) -> str:
    return (url or f"http://{settings.host}:{settings.port}").rstrip("/")


def client(settings: Settings, url: str | None, *, admin: bool) -> httpx.Client:
    token = settings.admin_token if admin else (settings.api_token or settings.admin_token)
    if admin and token is None:
        raise OperatorError(
            "REVSTREAM_ADMIN_TOKEN is not set: writes need the admin token the pipeline was started with"
        )
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
    return httpx.Client(base_url=api_base(settings, url), headers=headers, timeout=30)


def call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise OperatorError(
            f"could not reach {http.base_url} ({type(exc).__name__}): is the pipeline running "
            "(`revstream up`)? Use --url to point at another one."
        ) from None
    if response.status_code in (401, 403):
        raise OperatorError(f"{response.status_code}: the API refused the token: check REVSTREAM_*_TOKEN")
    return response
