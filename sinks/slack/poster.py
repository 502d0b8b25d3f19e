"""One POST to a Slack incoming webhook, and what its answer means.

Never logs or stores the webhook URL (it is the credential): errors are recorded as the HTTP
status or the exception's type only.

- 2xx: sent.
- 429: Slack rate limit; retry after Retry-After seconds, and pause every post until then.
- 5xx, or the connection could not be opened (nothing was sent): retry with exponential backoff.
- other 4xx (invalid_payload, no_service, ...): failed; retrying cannot help.
- anything after the request may have left (read timeout, connection dropped): uncertain.
  Slack may have posted it, and webhooks have no idempotency key, so it is NOT retried:
  never twice, at the price of at most once in that window.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

DEFAULT_RETRY_AFTER_S = 30.0
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 300.0


@dataclass(frozen=True)
class Outcome:
    state: str  # sent | retry | failed | uncertain
    error: str | None = None
    retry_in: timedelta | None = None
    pause_all: bool = False  # 429: the whole webhook is rate limited, not just this message


def backoff(attempts: int) -> timedelta:
    """2 s, 4 s, 8 s ... capped at 5 minutes, after the n-th failed attempt."""
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S))


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); a default otherwise."""
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    return DEFAULT_RETRY_AFTER_S


def classify(response: httpx.Response, attempts: int) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("sent")
    if status == 429:
        wait = retry_after(response.headers.get("retry-after"))
        return Outcome("retry", "HTTP 429 rate limited", timedelta(seconds=wait), pause_all=True)
    if status >= 500:
        return Outcome("retry", f"HTTP {status}", backoff(attempts))
    reason = response.text[:100].replace("\n", " ") if response.text else ""
    return Outcome("failed", f"HTTP {status} {reason}".strip())


async def post(client: httpx.AsyncClient, url: str, message: dict[str, Any], attempts: int) -> Outcome:
    """POST `message` as JSON; classify the result (see the module docstring)."""
    try:
        response = await client.post(url, json=message)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return Outcome("retry", type(exc).__name__, backoff(attempts))
    except httpx.HTTPError as exc:
        return Outcome("uncertain", type(exc).__name__)
    return classify(response, attempts)
